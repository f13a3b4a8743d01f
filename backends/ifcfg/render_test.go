package ifcfg

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// onePointX is an ifcfg file as amazon-ec2-net-utils 1.x wrote it (§5.2 of the reference),
// with extra lines an administrator added or changed.
func onePointX(iface, mac string, extra ...string) string {
	lines := []string{"DEVICE=" + iface, "BOOTPROTO=dhcp", "ONBOOT=yes", "TYPE=Ethernet", "USERCTL=yes",
		"PEERDNS=no", "IPV6INIT=yes", "DHCPV6C=yes", "DHCPV6C_OPTIONS=-nw", "PERSISTENT_DHCLIENT=yes",
		"HWADDR=" + mac, "DEFROUTE=no", "EC2SYNC=yes"}
	return strings.Join(append(lines, extra...), "\n") + "\n"
}

// goldenCases mirror amazon-ec2-net-utils 1.x's test scenarios (tests/params-*.sh: same
// interfaces, addresses and prefixes) plus the knobs and their configuration-file equivalents.
var goldenCases = []struct {
	name     string
	scenario string
	opts     func(*core.PlanOptions)
	// existing are files on disk before the first Apply (path relative to the root).
	existing map[string]string
}{
	{name: "eth0-basic", scenario: "eth0-basic"},
	{name: "secondary-basic", scenario: "secondary-basic"},
	{name: "secondary-more-ips", scenario: "secondary-more-ips"},
	{name: "secondary-delegated-v4", scenario: "secondary-delegated-v4"},
	{name: "secondary-delegated-v6", scenario: "secondary-delegated-v6"},
	{name: "secondary-multiple-delegated-v4", scenario: "secondary-multiple-delegated-v4"},
	{name: "secondary-multiple-delegated-v6", scenario: "secondary-multiple-delegated-v6"},
	{name: "v6-uncompressed-prefixes", scenario: "v6-uncompressed-prefixes"},

	// Each knob in a 1.x ifcfg file, and the configuration key that means the same.
	{name: "knob-ec2sync-no", scenario: "knobs",
		existing: map[string]string{"etc/sysconfig/network-scripts/ifcfg-eth1": onePointX("eth1", "00:00:5e:00:53:01", "EC2SYNC=no")}},
	{name: "knob-mainroutetable-no", scenario: "knobs",
		existing: map[string]string{"etc/sysconfig/network-scripts/ifcfg-eth1": onePointX("eth1", "00:00:5e:00:53:01", "MAINROUTETABLE=no")}},
	{name: "config-main-default-route-false", scenario: "knobs",
		opts: func(o *core.PlanOptions) { o.MainDefaultRoute = false }},
	{name: "knob-mainroutetable-yes-wins-over-config", scenario: "knobs",
		opts:     func(o *core.PlanOptions) { o.MainDefaultRoute = false },
		existing: map[string]string{"etc/sysconfig/network-scripts/ifcfg-eth1": onePointX("eth1", "00:00:5e:00:53:01", `MAINROUTETABLE="yes"`)}},
	{name: "knob-ec2provisionpfxips-yes", scenario: "knobs",
		existing: map[string]string{"etc/sysconfig/network-scripts/ifcfg-eth1": onePointX("eth1", "00:00:5e:00:53:01", "EC2PROVISIONPFXIPS=yes")}},
	{name: "config-assign-prefix-addresses", scenario: "knobs",
		opts: func(o *core.PlanOptions) { o.AssignPrefixAddresses = true }},
	{name: "knob-ec2provisionpfxips-no-wins-over-config", scenario: "knobs",
		opts:     func(o *core.PlanOptions) { o.AssignPrefixAddresses = true },
		existing: map[string]string{"etc/sysconfig/network-scripts/ifcfg-eth1": onePointX("eth1", "00:00:5e:00:53:01", "EC2PROVISIONPFXIPS=no # keep the prefix for pods")}},
	{name: "primary-rules-and-mtu", scenario: "knobs",
		opts: func(o *core.PlanOptions) { o.PrimaryRules = true; o.MTU = 9001 }},
}

// TestGolden runs the backend (fake kernel and dhclient) on each scenario and compares every
// file it leaves on disk, and the kernel state and dhclients it leaves behind, with
// testdata/golden/<case>. Run `go test ./backends/ifcfg -update` to rewrite them.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			po := core.DefaultPlanOptions()
			if tc.opts != nil {
				tc.opts(&po)
			}
			plan, links := planFor(t, tc.scenario, tc.opts)
			// The configuration's assign_prefix_addresses is what generated ifcfg files say.
			f := newFixtureWith(t, links, func(o *Options) { o.AssignPrefixAddresses = po.AssignPrefixAddresses })
			for rel, content := range tc.existing {
				f.write(t, rel, content)
			}
			// The IPv6 router is known once RAs arrived: 1.x's tests use fe80::4:3:2:1.
			for _, l := range links {
				f.kernel.ra[l.Index] = mustAddr("fe80::4:3:2:1")
			}
			f.apply(t, plan, links)
			if ch := f.apply(t, plan, links); ch.Changed() {
				t.Errorf("second apply changed %v / %v, %d reloads; want nothing (the RA router was already known)", ch.Written, ch.Removed, ch.Reloads)
			}
			got := f.tree(t, "etc")
			got["kernel.txt"] = f.kernel.dump() + "\n# dhclient processes\n" + f.dhcp.dump()
			compareGolden(t, filepath.Join("testdata", "golden", tc.name), got)
		})
	}
}

func planFor(t *testing.T, name string, opts func(*core.PlanOptions)) (core.Plan, []core.Link) {
	t.Helper()
	sc, err := scenario.Load(filepath.Join("testdata", "scenarios", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := core.ParseInstance(sc.Raw())
	if err != nil {
		t.Fatal(err)
	}
	po := core.DefaultPlanOptions()
	if opts != nil {
		opts(&po)
	}
	links := sc.CoreLinks()
	return core.NewPlan(inst, links, po), links
}

// compareGolden compares files (path relative to dir → content) with the golden directory.
func compareGolden(t *testing.T, dir string, got map[string]string) {
	t.Helper()
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		for rel, content := range got {
			p := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	want := readTree(t, dir)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("differs from %s (-want +got); run with -update if intended:\n%s", dir, diff)
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return out
}

func TestOwnershipTellsGeneratedEditedAndForeignApart(t *testing.T) {
	plan, _ := planFor(t, "secondary-basic", nil)
	files := Render(plan.Interfaces[1], Paths{Dir: "/d", DHClientConfDir: "/c"}, Settings{})
	if len(files) == 0 {
		t.Fatal("nothing rendered")
	}
	for _, f := range files {
		if owner, iface := Ownership(f.Content); owner != Generated || iface != "eth1" {
			t.Errorf("%s: Ownership = %v, %q; want generated for eth1", f.Path, owner, iface)
		}
	}
	route := string(files[1].Content)
	for name, content := range map[string]string{
		"a line added":       route + "10.8.0.0/16 via 192.168.10.1 dev eth1 table 10001\n",
		"a line changed":     strings.Replace(route, "table 10001", "table 10009", 1),
		"checksum removed":   strings.Replace(route, "# ec2-net-utils-checksum:", "#", 1),
		"a comment reworded": strings.Replace(route, "Delete it", "Remove it", 1),
	} {
		if owner, _ := Ownership([]byte(content)); owner != Edited {
			t.Errorf("%s: Ownership = %v, want edited", name, owner)
		}
	}
	for name, content := range map[string]string{
		"1.x's file":                   "default via 192.168.10.1 dev eth1 table 10001\n",
		"empty":                        "",
		"marker not on the first line": "# a comment\n" + route,
	} {
		if owner, _ := Ownership([]byte(content)); owner != Foreign {
			t.Errorf("%s: Ownership = %v, want foreign", name, owner)
		}
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	plan, _ := planFor(t, "secondary-more-ips", nil)
	s := Settings{BroadcastRenewals: true, RARouter: mustAddr("fe80::1")}
	a := Render(plan.Interfaces[1], Paths{Dir: "/d", DHClientConfDir: "/c"}, s)
	b := Render(plan.Interfaces[1], Paths{Dir: "/d", DHClientConfDir: "/c"}, s)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("two renders differ:\n%s", diff)
	}
}

func TestPrimaryGetsNoIfcfgAndNoDHClientConf(t *testing.T) {
	plan, _ := planFor(t, "secondary-basic", func(o *core.PlanOptions) { o.PrimaryRules = true })
	for _, f := range Render(plan.Interfaces[0], Paths{Dir: "/d", DHClientConfDir: "/c"}, Settings{}) {
		if f.Kind == KindIfcfg || f.Kind == KindDHClient {
			t.Errorf("rendered %s for the primary ENI: its ifcfg and DHCP belong to the image", f.Path)
		}
	}
}

// fixture is a backend writing into a temporary root, with a fake kernel and fake dhclient.
type fixture struct {
	root    string
	kernel  *fakeKernel
	dhcp    *fakeDHCP
	backend *Backend
}

func newFixture(t *testing.T, links []core.Link) *fixture {
	t.Helper()
	return newFixtureWith(t, links, nil)
}

func newFixtureWith(t *testing.T, links []core.Link, opt func(*Options)) *fixture {
	t.Helper()
	f := &fixture{root: t.TempDir(), kernel: newFakeKernel(links...), dhcp: newFakeDHCP()}
	o := Options{
		Dir:               filepath.Join(f.root, "etc/sysconfig/network-scripts"),
		DHClientConfDir:   filepath.Join(f.root, "etc/dhcp"),
		StateDir:          filepath.Join(f.root, "run/ec2-net-utils/ifcfg"),
		BroadcastRenewals: true,
		Kernel:            f.kernel,
		DHCP:              f.dhcp,
	}
	if opt != nil {
		opt(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.backend = b
	return f
}

func (f *fixture) apply(t *testing.T, plan core.Plan, links []core.Link) core.Changes {
	t.Helper()
	return plantest.Apply(t, f.backend, plan, links).Changes
}

func (f *fixture) path(rel string) string { return filepath.Join(f.root, rel) }

func (f *fixture) write(t *testing.T, rel, content string) {
	t.Helper()
	p := f.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(f.path(rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (f *fixture) exists(rel string) bool {
	_, err := os.Lstat(f.path(rel))
	return err == nil
}

// tree lists the files under root/sub, relative to root.
func (f *fixture) tree(t *testing.T, sub string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for rel, content := range readTree(t, f.path(sub)) {
		out[filepath.Join(sub, rel)] = content
	}
	return out
}
