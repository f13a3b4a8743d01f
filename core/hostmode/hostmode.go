// Package hostmode finds out whether someone else owns part of this host's networking: an image
// that disabled amazon-ec2-net-utils 2.x (EKS, kops), or the Amazon VPC CNI handing the ENIs'
// secondary addresses to pods. What it finds goes into the plan options (core.PlanOptions
// StandBack and VPCCNI); the planner stays pure and decides what that means per ENI.
//
// Signals, and why these:
//
//   - 2.x's opt-out is a file, by design of 2.x: /etc/udev/rules.d/99-vpc-policy-routes.rules
//     empty (EKS AMIs `touch` it; kops writes it empty) or a symlink to /dev/null (the classic
//     mask), or policy-routes@.service masked in /etc or /run. Images made that choice before
//     this package existed, and it replaces 2.x: honouring the same switch keeps them as they are.
//     Checked on every pass, not latched: kops writes it after boot, while the agent runs.
//   - The VPC CNI is recognised by its configuration file, /etc/cni/net.d/10-aws.conflist (the
//     name aws-node writes, kept across reboots, so a rebooted node is known before any pod
//     starts) or any CNI configuration there naming the aws-cni plugin (chained setups), and by
//     its per-pod rule in the kernel: `to <pod address> lookup main` at priority 512, which the
//     CNI hard-codes for every pod it routes, on any ENI, and which no other known tenant uses
//     (Cilium uses 20/100/110, Tailscale 52xx, nm-cloud-setup 302xx). Its 1536 rules are not
//     a signal on their own: a `from <address> lookup <table>` rule is what any administrator
//     writes for source routing. Once seen, the CNI is latched for
//     the life of the process: its rules come and go with pods, its file with upgrades, and a
//     host that flips back would assign pod addresses to itself.
//   - The CNI's `node.k8s.amazonaws.com/no_manage` tag is not visible on the instance: IMDS does
//     not publish ENI tags (meta-data/tags/instance holds instance tags only), and reading them
//     from the EC2 API needs credentials the agent does not have. So on a CNI host every
//     secondary ENI is the CNI's.
package hostmode

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
)

// Values of interfaces.container_host (conf.ContainerHost*).
const (
	ContainerHostAuto   = "auto"
	ContainerHostVPCCNI = "vpc-cni"
	ContainerHostOff    = "off"
)

// Paths read, relative to the file system root.
const (
	UdevRule        = "/etc/udev/rules.d/99-vpc-policy-routes.rules"
	CNIConfDir      = "/etc/cni/net.d"
	VPCCNIConfList  = CNIConfDir + "/10-aws.conflist"
	policyRoutesSvc = "policy-routes@.service"
)

// unitDirs are where `systemctl mask` (and --runtime) put their /dev/null symlinks.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system"}

// cniToPodPriority is the VPC CNI's per-pod rule priority (amazon-vpc-cni-k8s
// pkg/networkutils: toContainerRulePriority).
const cniToPodPriority = 512

// maxConfBytes bounds what is read of one file: CNI configurations and udev rules are small,
// and a huge or endless file must not stall the agent.
const maxConfBytes = 64 << 10

// Kernel is what detection reads from the kernel: every rule in a priority range.
type Kernel interface {
	Selectors(lo, hi int) ([]netlinkx.Selector, error)
}

// Options configure a Detector.
type Options struct {
	// Root is the file system root the paths are read under; "" is "/". Tests use a temp dir.
	Root string
	// ContainerHost is interfaces.container_host.
	ContainerHost string
	// Kernel, if set, lets auto mode see the CNI's pod rules.
	Kernel Kernel
	// RuleCheckInterval spaces the looks for the CNI's pod rules (a dump of every rule: 1 700 of
	// ours at 32 ENIs, the largest part of a pass that changes nothing); 1 minute. The CNI's
	// configuration file, which it writes before any pod exists, is still looked for every pass.
	RuleCheckInterval time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger hclog.Logger
}

// Detector looks at the host once per reconcile pass. It is not safe for concurrent use; the
// reconciler calls it from its one goroutine.
type Detector struct {
	o         Options
	cni       string // latched reason the host runs the VPC CNI
	standBack string // last stand-back reason, to log changes once
	// rulesChecked is when the pod rules were last looked for.
	rulesChecked time.Time
}

// New returns a Detector.
func New(o Options) *Detector {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.ContainerHost == "" {
		o.ContainerHost = ContainerHostAuto
	}
	if o.RuleCheckInterval <= 0 {
		o.RuleCheckInterval = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Detector{o: o}
}

// Adjust returns base with StandBack and VPCCNI set from what the host shows now. It logs at
// info when either changes, so a host that stands back says so once, not every pass.
func (d *Detector) Adjust(base core.PlanOptions) core.PlanOptions {
	standBack := d.StandBack()
	if standBack != d.standBack {
		if standBack != "" {
			d.o.Logger.Info("standing back: managing no ENI", "why", standBack)
		} else {
			d.o.Logger.Info("amazon-ec2-net-utils opt-out removed: managing ENIs again")
		}
		d.standBack = standBack
	}
	base.StandBack = standBack
	base.VPCCNI = d.VPCCNI()
	return base
}

// StandBack reports why the agent must manage nothing on this image, or "".
func (d *Detector) StandBack() string {
	const why = "amazon-ec2-net-utils is disabled on this image: "
	switch state, err := d.fileState(UdevRule); {
	case err != nil:
		d.o.Logger.Warn("cannot read the amazon-ec2-net-utils opt-out; assuming none", "path", UdevRule, "error", err)
	case state != "":
		return why + UdevRule + " is " + state
	}
	for _, dir := range unitDirs {
		p := filepath.Join(dir, policyRoutesSvc)
		if masked, _ := d.isMask(p); masked {
			return why + p + " is masked (a symlink to /dev/null)"
		}
	}
	return ""
}

// fileState says how a file disables what it overrides: "masked (...)", "empty", or "" when it
// is absent or has content of its own (someone's own rules, not an opt-out).
func (d *Detector) fileState(p string) (string, error) {
	if masked, err := d.isMask(p); err != nil || masked {
		if masked {
			return "masked (a symlink to /dev/null)", nil
		}
		return "", err
	}
	b, err := d.read(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", err
	case !hasContent(b):
		return "empty", nil
	}
	return "", nil
}

// isMask reports whether p is a symlink to /dev/null, the way systemd and udev mask a file.
func (d *Detector) isMask(p string) (bool, error) {
	target, err := os.Readlink(d.path(p))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case errors.Is(err, unix.EINVAL): // not a symlink
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read %s: %w", p, err)
	}
	return filepath.Clean(target) == "/dev/null", nil
}

// hasContent reports whether a udev rules file has anything but blank lines and comments.
func hasContent(b []byte) bool {
	for line := range strings.SplitSeq(string(b), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// VPCCNI reports why the host is taken for a VPC CNI host, or "".
func (d *Detector) VPCCNI() string {
	switch d.o.ContainerHost {
	case ContainerHostOff:
		return ""
	case ContainerHostVPCCNI:
		return `container_host = "vpc-cni" in the configuration`
	}
	if d.cni != "" {
		return d.cni
	}
	if why := d.detectCNI(); why != "" {
		d.cni = why
		d.o.Logger.Info("VPC CNI detected: leaving pod addresses and secondary ENIs to it", "why", why)
	}
	return d.cni
}

func (d *Detector) detectCNI() string {
	if _, err := os.Stat(d.path(VPCCNIConfList)); err == nil {
		return "VPC CNI configuration " + VPCCNIConfList
	}
	if f := d.confNamingAWSCNI(); f != "" {
		return "CNI configuration " + f + " uses the aws-cni plugin"
	}
	if now := d.o.Now(); d.o.Kernel != nil && (d.rulesChecked.IsZero() || now.Sub(d.rulesChecked) >= d.o.RuleCheckInterval) {
		d.rulesChecked = now
		rules, err := d.o.Kernel.Selectors(cniToPodPriority, cniToPodPriority)
		if err != nil {
			d.o.Logger.Warn("cannot list rules to look for the VPC CNI", "error", err)
			return ""
		}
		for _, r := range rules {
			if isPodRule(r) {
				return fmt.Sprintf("VPC CNI pod rules in the kernel (priority %d)", r.Priority)
			}
		}
	}
	return ""
}

// isPodRule matches the CNI's per-pod rule: `to <pod> lookup main` at 512, for one address.
func isPodRule(r netlinkx.Selector) bool {
	return r.Priority == cniToPodPriority && r.To.IsValid() && r.To.IsSingleIP() && r.Table == unix.RT_TABLE_MAIN
}

// confNamingAWSCNI returns the CNI configuration file that names the aws-cni plugin, or "".
func (d *Detector) confNamingAWSCNI() string {
	entries, err := os.ReadDir(d.path(CNIConfDir))
	if err != nil {
		return ""
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".conflist") || strings.HasSuffix(name, ".conf") || strings.HasSuffix(name, ".json")) {
			continue
		}
		p := CNIConfDir + "/" + name
		if b, err := d.read(p); err == nil && strings.Contains(string(b), `"aws-cni"`) {
			return p
		}
	}
	return ""
}

func (d *Detector) path(p string) string { return filepath.Join(d.o.Root, p) }

// read reads at most maxConfBytes of a file.
func (d *Detector) read(p string) ([]byte, error) {
	f, err := os.Open(d.path(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxConfBytes))
}
