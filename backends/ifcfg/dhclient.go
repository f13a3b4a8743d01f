package ifcfg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// ClientSpec is what the agent wants from the dhclient of one ENI and family.
type ClientSpec struct {
	Iface  string
	Family core.Family
	// Metric, MainDefault and MTU reach the dhclient script as EC2NET_METRIC,
	// EC2NET_MAIN_DEFAULT and EC2NET_MTU.
	Metric      int
	MainDefault bool
	MTU         int
}

// Process is a running dhclient serving an interface.
type Process struct {
	Pid int
	// Args are its arguments, without the program name.
	Args []string
	// Ours: it runs the agent's dhclient script. Otherwise someone else started it — initscripts'
	// ifup at boot, from the ifcfg file the agent wrote — and the agent adopts it as it is.
	Ours bool
}

// Default runtime locations. The pid files have the names initscripts gives its own dhclients
// (/var/run/dhclient-<iface>.pid, /var/run is /run): ifup and ifdown find the agent's dhclient,
// and the agent finds theirs, so one interface never gets two. The lease files have initscripts'
// names too, in dhclient's state directory, so either client picks up the other's lease.
const (
	DefaultPidDir = "/run"
	// DefaultStateDir holds what the agent must remember about the ENIs it configured between
	// restarts of the daemon (tmpfs: the kernel state it describes does not survive a reboot).
	DefaultStateDir = "/run/ec2-net-utils/ifcfg"
)

// leaseDirs are dhclient's state directories: Amazon Linux 2 and CentOS 7 first, then Debian's.
var leaseDirs = []string{"/var/lib/dhclient", "/var/lib/dhcp"}

// DefaultLeaseDir is the first of dhclient's usual state directories that exists.
func DefaultLeaseDir() string {
	for _, d := range leaseDirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
	}
	return leaseDirs[0]
}

// DHClient runs ISC dhclient, one daemon per interface and family.
type DHClient struct {
	// Binary is the dhclient program (default "dhclient", looked up in PATH, then /sbin and /usr/sbin).
	Binary string
	// Script is the dhclient script (-sf), the project's own.
	Script   string
	ConfDir  string // dhclient-<iface>.conf (-cf), IPv4 only
	PidDir   string
	LeaseDir string
	// ProcDir is procfs (default /proc); tests point it elsewhere.
	ProcDir string
	// StartTimeout bounds one start; with -nw dhclient forks at once (≈50 ms).
	StartTimeout time.Duration
	// StopTimeout is how long a dhclient gets to exit after SIGTERM before SIGKILL.
	StopTimeout time.Duration
}

func (d *DHClient) procDir() string {
	if d.ProcDir == "" {
		return "/proc"
	}
	return d.ProcDir
}

// PidFile is where the dhclient of iface and family records its PID.
func (d *DHClient) PidFile(iface string, fam core.Family) string {
	if fam == core.IPv6 {
		return filepath.Join(d.PidDir, "dhclient6-"+iface+".pid")
	}
	return filepath.Join(d.PidDir, "dhclient-"+iface+".pid")
}

// LeaseFile is where the dhclient of iface and family keeps its lease.
func (d *DHClient) LeaseFile(iface string, fam core.Family) string {
	if fam == core.IPv6 {
		return filepath.Join(d.LeaseDir, "dhclient6--"+iface+".lease")
	}
	return filepath.Join(d.LeaseDir, "dhclient--"+iface+".lease")
}

// Args are the arguments the agent starts dhclient with. -nw: fork at once instead of waiting
// up to the configuration's timeout for a first lease, so the agent never blocks on DHCP.
func (d *DHClient) Args(s ClientSpec) []string {
	args := []string{"-4"}
	if s.Family == core.IPv6 {
		args = []string{"-6"}
	}
	args = append(args, "-nw")
	if s.Family == core.IPv4 {
		args = append(args, "-cf", filepath.Join(d.ConfDir, "dhclient-"+s.Iface+".conf"))
	}
	return append(args,
		"-lf", d.LeaseFile(s.Iface, s.Family),
		"-pf", d.PidFile(s.Iface, s.Family),
		"-sf", d.Script,
		"-e", "EC2NET_METRIC="+strconv.Itoa(s.Metric),
		"-e", "EC2NET_MAIN_DEFAULT="+yesNo(s.MainDefault),
		"-e", "EC2NET_MTU="+strconv.Itoa(s.MTU),
		s.Iface,
	)
}

// Find returns the dhclient serving iface for a family, or a zero Process when none runs. It
// trusts the pid file only after checking that the PID is a dhclient for that interface in this
// network namespace (PIDs are reused), and otherwise looks through procfs for one started with
// another pid file.
func (d *DHClient) Find(iface string, fam core.Family) (Process, error) {
	self, err := os.Readlink(filepath.Join(d.procDir(), "self", "ns", "net"))
	if err != nil {
		return Process{}, fmt.Errorf("ifcfg: own network namespace: %w", err)
	}
	if b, err := os.ReadFile(d.PidFile(iface, fam)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			if p, ok := d.inspect(pid, iface, fam, self, true); ok {
				return p, nil
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Process{}, fmt.Errorf("ifcfg: read %s: %w", d.PidFile(iface, fam), err)
	}
	entries, err := os.ReadDir(d.procDir())
	if err != nil {
		return Process{}, fmt.Errorf("ifcfg: list processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if p, ok := d.inspect(pid, iface, fam, self, false); ok {
			return p, nil
		}
	}
	return Process{}, nil
}

// inspect reports whether pid is a long-running dhclient for iface and fam in the network
// namespace netns. fromPidFile says the PID comes from the interface's pid file: then a process
// whose namespace cannot be read is accepted. That is the case of a dhclient started by
// initscripts, with every capability, when the agent runs with CAP_NET_ADMIN only: the kernel
// lets a process read another's namespaces only if it holds all of that process's capabilities.
func (d *DHClient) inspect(pid int, iface string, fam core.Family, netns string, fromPidFile bool) (Process, bool) {
	args, ok := d.cmdline(pid)
	if !ok || len(args) < 2 || filepath.Base(args[0]) != "dhclient" || args[len(args)-1] != iface {
		return Process{}, false
	}
	// -r and -x are short-lived commands that stop another dhclient.
	if slices.Contains(args, "-r") || slices.Contains(args, "-x") || slices.Contains(args, "-6") != (fam == core.IPv6) {
		return Process{}, false
	}
	ns, err := os.Readlink(filepath.Join(d.procDir(), strconv.Itoa(pid), "ns", "net"))
	switch {
	case err == nil && ns != netns:
		return Process{}, false
	case err != nil && !(fromPidFile && errors.Is(err, fs.ErrPermission)):
		return Process{}, false
	}
	i := slices.Index(args, "-sf")
	ours := i > 0 && i+1 < len(args) && args[i+1] == d.Script
	return Process{Pid: pid, Args: args[1:], Ours: ours}, true
}

func (d *DHClient) cmdline(pid int) ([]string, bool) {
	b, err := os.ReadFile(filepath.Join(d.procDir(), strconv.Itoa(pid), "cmdline"))
	if err != nil || len(b) == 0 {
		return nil, false
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), true
}

// Start starts a dhclient for the spec; it returns once dhclient has forked into the background.
func (d *DHClient) Start(ctx context.Context, s ClientSpec) error {
	for _, dir := range []string{d.PidDir, d.LeaseDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("ifcfg: %w", err)
		}
	}
	timeout := d.StartTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bin, err := d.binary()
	if err != nil {
		return err
	}
	// dhclient starts happily with a script it cannot run, and then configures nothing.
	if !isExecutable(d.Script) {
		return fmt.Errorf("ifcfg: dhclient script %s is missing or not executable ([ifcfg] dhclient_script; is the package fully installed?)", d.Script)
	}
	cmd := exec.CommandContext(ctx, bin, d.Args(s)...)
	// The daemon must outlive the agent (a restart of the agent is not a DHCP event) and must not
	// share its process group, so a signal aimed at the agent does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// The daemon dhclient forks reopens its standard streams on /dev/null, but its script may
	// still hold the output pipe for a moment: do not wait for it once the parent has exited.
	cmd.WaitDelay = 200 * time.Millisecond
	out, err := cmd.CombinedOutput()
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return fmt.Errorf("ifcfg: start %s %s: %w: %s", bin, strings.Join(d.Args(s), " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (d *DHClient) binary() (string, error) {
	name := d.Binary
	if name == "" {
		name = "dhclient"
	}
	if strings.Contains(name, "/") {
		if !isExecutable(name) {
			return "", fmt.Errorf("ifcfg: %s is missing or not executable", name)
		}
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/sbin", "/usr/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("ifcfg: %s not found in PATH, /sbin or /usr/sbin (is the dhclient package installed?)", name)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Stop ends a dhclient without releasing its lease: SIGTERM, which makes dhclient exit without
// running its script, so the address stays until a new dhclient takes over or the link goes
// (dhclient -x would run the script with STOP and drop the address first). After StopTimeout
// it is killed. Its pid file is removed if it still names it.
func (d *DHClient) Stop(p Process) error {
	if p.Pid <= 0 {
		return nil
	}
	iface := ""
	if len(p.Args) > 0 {
		iface = p.Args[len(p.Args)-1]
	}
	fam := core.IPv4
	if slices.Contains(p.Args, "-6") {
		fam = core.IPv6
	}
	alive := func() bool {
		args, ok := d.cmdline(p.Pid)
		return ok && slices.Equal(args[1:], p.Args) && !isZombie(d.procDir(), p.Pid)
	}
	timeout := d.StopTimeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if !alive() {
			break
		}
		if err := syscall.Kill(p.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("ifcfg: stop dhclient %d (%s): %w", p.Pid, iface, err)
		}
		for deadline := time.Now().Add(timeout); alive() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if alive() {
		return fmt.Errorf("ifcfg: dhclient %d (%s) did not exit after SIGKILL", p.Pid, iface)
	}
	pidFile := d.PidFile(iface, fam)
	if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(p.Pid) {
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ifcfg: %w", err)
		}
	}
	return nil
}

// isZombie: an exited child of ours that nobody reaped yet (tests) no longer serves anything.
func isZombie(proc string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	_, rest, ok := bytes.Cut(b, []byte(") "))
	return ok && len(rest) > 0 && rest[0] == 'Z'
}

// RemoveFiles removes the pid and lease files of iface and family: what a detached ENI's dhclient
// leaves behind.
func (d *DHClient) RemoveFiles(iface string, fam core.Family) ([]string, error) {
	var removed []string
	var errs []error
	for _, f := range []string{d.PidFile(iface, fam), d.LeaseFile(iface, fam)} {
		switch err := os.Remove(f); {
		case err == nil:
			removed = append(removed, f)
		case errors.Is(err, fs.ErrNotExist):
		default:
			errs = append(errs, fmt.Errorf("ifcfg: %w", err))
		}
	}
	return removed, errors.Join(errs...)
}
