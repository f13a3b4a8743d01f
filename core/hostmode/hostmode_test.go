package hostmode

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
)

// write creates path under root with content, or a symlink to target when content starts "->".
func write(t *testing.T, root, path, content string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if target, ok := strings.CutPrefix(content, "->"); ok {
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStandBackOnTheOptOutsOfAmazonEC2NetUtils2(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string // substring of the reason; "" means manage
	}{
		{"plain host", nil, ""},
		{"EKS: rule emptied with touch", map[string]string{UdevRule: ""}, UdevRule + " is empty"},
		{"rule with only comments", map[string]string{UdevRule: "# disabled by the image\n\n"}, UdevRule + " is empty"},
		{"kops: rule masked", map[string]string{UdevRule: "->/dev/null"}, UdevRule + " is masked"},
		{"a user's own rules are not an opt-out", map[string]string{UdevRule: `SUBSYSTEM=="net", ACTION=="add", RUN+="/bin/true"` + "\n"}, ""},
		{"symlink elsewhere is not a mask", map[string]string{UdevRule: "->/usr/lib/udev/rules.d/99-vpc-policy-routes.rules"}, ""},
		{"policy-routes@ masked", map[string]string{"/etc/systemd/system/policy-routes@.service": "->/dev/null"}, "policy-routes@.service is masked"},
		{"policy-routes@ masked at runtime", map[string]string{"/run/systemd/system/policy-routes@.service": "->/dev/null"}, "/run/systemd/system/policy-routes@.service is masked"},
		{"only the refresh timer masked: 2.x still configured ENIs", map[string]string{"/etc/systemd/system/refresh-policy-routes@.timer": "->/dev/null"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for p, content := range c.files {
				write(t, root, p, content)
			}
			got := New(Options{Root: root}).Adjust(core.DefaultPlanOptions()).StandBack
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Errorf("StandBack = %q, want %q", got, c.want)
			}
		})
	}
}

// The opt-out is read on every pass: kops writes it after boot, while the agent runs.
func TestStandBackFollowsTheOptOutAtRuntime(t *testing.T) {
	root := t.TempDir()
	d := New(Options{Root: root})
	if d.Adjust(core.PlanOptions{}).StandBack != "" {
		t.Fatal("stands back on a plain host")
	}
	write(t, root, UdevRule, "")
	if d.Adjust(core.PlanOptions{}).StandBack == "" {
		t.Fatal("does not stand back once the rule is emptied")
	}
	if err := os.Remove(filepath.Join(root, UdevRule)); err != nil {
		t.Fatal(err)
	}
	if d.Adjust(core.PlanOptions{}).StandBack != "" {
		t.Fatal("still stands back after the opt-out was removed")
	}
}

type fakeKernel []netlinkx.Selector

func (k *fakeKernel) Selectors(lo, hi int) ([]netlinkx.Selector, error) {
	var out []netlinkx.Selector
	for _, s := range *k {
		if s.Priority >= lo && s.Priority <= hi {
			out = append(out, s)
		}
	}
	return out, nil
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestVPCCNIDetection(t *testing.T) {
	aws := `{"cniVersion": "0.4.0", "name": "aws-cni", "plugins": [{"name": "aws-cni", "type": "aws-cni"}]}`
	for _, c := range []struct {
		name   string
		mode   string
		files  map[string]string
		kernel fakeKernel
		want   string
	}{
		{name: "plain host", mode: "auto"},
		{name: "aws-node's configuration", mode: "auto", files: map[string]string{VPCCNIConfList: aws}, want: "10-aws.conflist"},
		{name: "chained configuration naming aws-cni", mode: "auto", files: map[string]string{CNIConfDir + "/05-cilium.conflist": aws}, want: "05-cilium.conflist uses the aws-cni plugin"},
		{name: "another CNI", mode: "auto", files: map[string]string{CNIConfDir + "/10-flannel.conflist": `{"plugins": [{"type": "flannel"}]}`}},
		{name: "pod rule to a pod at 512", mode: "auto", kernel: fakeKernel{{Priority: 512, Table: 254, To: pfx("10.99.1.20/32")}}, want: "priority 512"},
		{name: "other tenants' rules", mode: "auto", kernel: fakeKernel{
			{Priority: 1024, Table: 254},                           // the CNI's fwmark rule alone says nothing about pods
			{Priority: 512, Table: 200, From: pfx("192.0.2.0/24")}, // a user's
			{Priority: 512, Table: 254, To: pfx("10.99.50.0/24")},  // a user's, not one address
			// A source rule at 1536 is what any administrator writes for source routing; the
			// e2e harness has exactly this one among its foreign rules on an ordinary host.
			{Priority: 1536, Table: 10001, From: pfx("10.99.1.77/32")},
		}},
		{name: "vpc-cni asserted", mode: "vpc-cni", want: `container_host = "vpc-cni"`},
		{name: "off ignores every signal", mode: "off", files: map[string]string{VPCCNIConfList: aws},
			kernel: fakeKernel{{Priority: 512, Table: 254, To: pfx("10.99.1.20/32")}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for p, content := range c.files {
				write(t, root, p, content)
			}
			got := New(Options{Root: root, ContainerHost: c.mode, Kernel: &c.kernel}).Adjust(core.DefaultPlanOptions()).VPCCNI
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Errorf("VPCCNI = %q, want %q", got, c.want)
			}
		})
	}
}

// The CNI's rules come and go with pods and its file with upgrades; a host that flipped back
// would assign pod addresses to itself.
func TestVPCCNIOnceSeenStaysForTheProcess(t *testing.T) {
	kernel := fakeKernel{{Priority: 512, Table: 254, To: pfx("10.99.1.20/32")}}
	d := New(Options{Root: t.TempDir(), Kernel: &kernel})
	if d.Adjust(core.PlanOptions{}).VPCCNI == "" {
		t.Fatal("pod rule not detected")
	}
	kernel = nil // the last pod is gone
	if d.Adjust(core.PlanOptions{}).VPCCNI == "" {
		t.Error("VPC CNI forgotten when its last pod rule went away")
	}
}

type countingKernel struct {
	fakeKernel
	dumps int
}

func (k *countingKernel) Selectors(lo, hi int) ([]netlinkx.Selector, error) {
	k.dumps++
	return k.fakeKernel.Selectors(lo, hi)
}

// Looking for pod rules dumps every rule; it happens once per RuleCheckInterval, not every pass
// (issue #16), and still finds rules that appear later.
func TestPodRulesAreLookedForOncePerInterval(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	k := &countingKernel{}
	d := New(Options{Root: t.TempDir(), Kernel: k, RuleCheckInterval: time.Minute, Now: func() time.Time { return now }})
	for range 5 {
		d.Adjust(core.PlanOptions{})
		now = now.Add(10 * time.Second)
	}
	if k.dumps != 1 {
		t.Errorf("%d rule dumps in 40s, want 1", k.dumps)
	}
	k.fakeKernel = fakeKernel{{Priority: 512, Table: 254, To: pfx("10.99.1.20/32")}}
	now = now.Add(time.Minute)
	if d.Adjust(core.PlanOptions{}).VPCCNI == "" || k.dumps != 2 {
		t.Errorf("pod rule not found a minute later (%d dumps)", k.dumps)
	}
}
