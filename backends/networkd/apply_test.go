package networkd

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

type countingReloader struct {
	calls int
	err   error
	// reconfigured lists the links ReconfigureLink was called for; onReconfigure, if set, runs
	// for each (networkd acting on it).
	reconfigured  []int
	onReconfigure func(ifindex int)
}

func (r *countingReloader) Reload(ctx context.Context) error {
	r.calls++
	return r.err
}

func (r *countingReloader) ReconfigureLink(_ context.Context, ifindex int) error {
	r.reconfigured = append(r.reconfigured, ifindex)
	if r.onReconfigure != nil {
		r.onReconfigure(ifindex)
	}
	return nil
}

type fixture struct {
	dir, state string
	reloader   *countingReloader
	kernel     *fakeKernel
	backend    *Backend
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{dir: filepath.Join(root, "network"), state: filepath.Join(root, "links"), reloader: &countingReloader{}, kernel: &fakeKernel{}}
	for _, d := range []string{f.dir, f.state} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.backend = New(Options{Dir: f.dir, StateDir: f.state, Reloader: f.reloader, Kernel: f.kernel})
	return f
}

func (f *fixture) apply(t *testing.T, plan core.Plan, links []core.Link) core.Changes {
	t.Helper()
	return plantest.Apply(t, f.backend, plan, links).Changes
}

// setNetworkFile makes the fake networkd report the .network file it applies to a link.
func (f *fixture) setNetworkFile(t *testing.T, ifindex int, file string) {
	t.Helper()
	content := "# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\nNETWORK_FILE=" + file + "\n"
	if err := os.WriteFile(filepath.Join(f.state, strconv.Itoa(ifindex)), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tree lists every file under dir (relative path → content; symlinks as "-> target").
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + target
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// assertNoTempFiles proves the writes were atomic: nothing half-written is left behind.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	for _, k := range keys(tree(t, dir)) {
		if strings.HasSuffix(k, ".tmp") || strings.HasPrefix(filepath.Base(k), ".") {
			t.Errorf("temporary file left behind: %s", k)
		}
	}
}

var (
	ens5 = core.Link{Name: "ens5", Index: 2, MAC: "02:00:00:00:05:05", Driver: "ena"}
	ens6 = core.Link{Name: "ens6", Index: 3, MAC: "02:aa:bb:cc:dd:ee", Driver: "ena"}
)

// twoENIs is the primary and an IPv4 secondary ENI: all of their configuration is in files (an
// ENI with IPv6 keeps its rules and addresses in the kernel; see TestENIWithIPv6...).
func twoENIs() (core.Plan, []core.Link) {
	return core.Plan{Interfaces: []core.InterfacePlan{plantest.Primary(), secondaryIPv4()}}, []core.Link{ens5, ens6}
}

// secondaryIPv4 is plantest.SecondaryDualStack on a subnet without IPv6.
func secondaryIPv4() core.InterfacePlan {
	p := plantest.SecondaryDualStack()
	p.IPv6 = false
	p.Rules = slices.DeleteFunc(p.Rules, func(r core.Rule) bool { return r.Family == core.IPv6 })
	p.Routes = slices.DeleteFunc(p.Routes, func(r core.Route) bool { return r.Destination.Addr().Is6() })
	return p
}

func rel(dir string, paths []string) []string {
	var out []string
	for _, p := range paths {
		r, err := filepath.Rel(dir, p)
		if err != nil {
			r = p
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

var twoENIFiles = []string{
	"70-ens5.network", "70-ens5.network.d/ec2net_alias.conf", "70-ens5.network.d/eni.conf",
	"70-ens6.network", "70-ens6.network.d/ec2net_alias.conf", "70-ens6.network.d/ec2net_policy_4.conf",
	"70-ens6.network.d/eni.conf",
}

func TestFirstApplyWritesEveryFileAndReloadsOnce(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	ch := f.apply(t, plan, links)

	if diff := cmp.Diff(twoENIFiles, rel(f.dir, ch.Written)); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	if ch.Reloads != 1 || f.reloader.calls != 1 {
		t.Errorf("reloads: changes say %d, reloader saw %d; want 1 (coalesced over both ENIs)", ch.Reloads, f.reloader.calls)
	}
	if diff := cmp.Diff(twoENIFiles, keys(tree(t, f.dir))); diff != "" {
		t.Errorf("files on disk (-want +got):\n%s", diff)
	}
	for _, p := range ch.Written {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", p, fi.Mode().Perm())
		}
	}
	// What is on disk is exactly what Render produces.
	for _, p := range plan.Interfaces {
		for _, file := range Render(p, ActiveFile{}) {
			got, err := os.ReadFile(filepath.Join(f.dir, file.Path))
			if err != nil || string(got) != string(file.Content) {
				t.Errorf("%s on disk differs from Render (err %v)", file.Path, err)
			}
		}
	}
	assertNoTempFiles(t, f.dir)
}

// TestUnchangedPlanWritesNothingAndDoesNotReload is the #108 property: a boot, an upgrade or a
// refresh with nothing new must not make networkd reconfigure anything.
func TestUnchangedPlanWritesNothingAndDoesNotReload(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	f.apply(t, plan, links)
	before := tree(t, f.dir)

	ch := f.apply(t, plan, links)
	if ch.Changed() {
		t.Errorf("second apply changed something: %+v", ch)
	}
	if f.reloader.calls != 1 {
		t.Errorf("reloader called %d times in total, want 1", f.reloader.calls)
	}
	if diff := cmp.Diff(before, tree(t, f.dir)); diff != "" {
		t.Errorf("files changed (-before +after):\n%s", diff)
	}
}

func TestSecondaryIPRemovedRewritesAliasesThenRemovesFile(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	f.apply(t, plan, links)

	// 10.0.1.52 goes away: one alias and one rule less.
	p := &plan.Interfaces[1]
	p.Addresses = []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32")}
	p.Rules = slices.DeleteFunc(p.Rules, func(r core.Rule) bool { return r.From.Addr() == netip.MustParseAddr("10.0.1.52") })
	ch := f.apply(t, plan, links)
	want := []string{"70-ens6.network.d/ec2net_alias.conf", "70-ens6.network.d/ec2net_policy_4.conf"}
	if diff := cmp.Diff(want, rel(f.dir, ch.Written)); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	if len(ch.Removed) != 0 || ch.Reloads != 1 {
		t.Errorf("removed %v, reloads %d; want none removed, 1 reload", ch.Removed, ch.Reloads)
	}
	alias := tree(t, f.dir)["70-ens6.network.d/ec2net_alias.conf"]
	if strings.Contains(alias, "10.0.1.52") || !strings.Contains(alias, "Address=10.0.1.51/32") {
		t.Errorf("alias file after removal:\n%s", alias)
	}

	// The last secondary goes away: the file goes too.
	p.Addresses = nil
	ch = f.apply(t, plan, links)
	if diff := cmp.Diff([]string{"70-ens6.network.d/ec2net_alias.conf"}, rel(f.dir, ch.Removed)); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if len(ch.Written) != 0 || ch.Reloads != 1 || f.reloader.calls != 3 {
		t.Errorf("written %v, reloads %d (total %d); want nothing written, 1 reload (3 in total)", ch.Written, ch.Reloads, f.reloader.calls)
	}
	if _, ok := tree(t, f.dir)["70-ens6.network.d/ec2net_alias.conf"]; ok {
		t.Error("ec2net_alias.conf still exists")
	}
}

func TestDetachRemovesTheInterfaceFilesWithoutReload(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	f.apply(t, plan, links)

	ch := f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, []core.Link{ens5})
	want := []string{
		"70-ens6.network", "70-ens6.network.d/ec2net_alias.conf", "70-ens6.network.d/ec2net_policy_4.conf",
		"70-ens6.network.d/eni.conf",
	}
	if diff := cmp.Diff(want, rel(f.dir, ch.Removed)); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if ch.Reloads != 0 || f.reloader.calls != 1 {
		t.Errorf("detach reloaded networkd (%d in this apply, %d in total)", ch.Reloads, f.reloader.calls)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "70-ens6.network.d")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty drop-in directory left: %v", err)
	}
	if diff := cmp.Diff(twoENIFiles[:3], keys(tree(t, f.dir))); diff != "" {
		t.Errorf("files left (-want +got):\n%s", diff)
	}
}

// TestPresentButUnplannedInterfaceIsLeftAlone: an ENI dropped from the plan while its link is
// still there (excluded, or IMDS not answering for it) keeps its configuration.
func TestPresentButUnplannedInterfaceIsLeftAlone(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	f.apply(t, plan, links)
	before := tree(t, f.dir)

	ch := f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, links)
	if ch.Changed() {
		t.Errorf("apply changed something: %+v", ch)
	}
	if diff := cmp.Diff(before, tree(t, f.dir)); diff != "" {
		t.Errorf("files changed (-before +after):\n%s", diff)
	}
}

func TestFilesOfOthersAreNeverTouched(t *testing.T) {
	f := newFixture(t)
	others := map[string]string{
		"10-netplan-ens5.network":          "[Match]\nName=ens5\n[Network]\nDHCP=ipv4\n",
		"99-user.network":                  "[Match]\nName=ens9\n",
		"70-eks-ens9.network":              "[Match]\nPermanentMACAddress=02:00:00:00:09:09\n",
		"70-ens9.network.d/eni.conf":       "# written by hand for an interface that is gone\n[Route]\nTable=5\n",
		"70-ens6.network.d/99-user.conf":   "[Route]\nDestination=192.0.2.0/24\n",
		"70-ens6.network.d/ec2net_x.conf":  "[Route]\nDestination=198.51.100.0/24\n",
		"80-ec2.network.d/10-eks-off.conf": "[Match]\nName=none\n",
	}
	for name, content := range others {
		p := filepath.Join(f.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	plan, links := twoENIs()
	f.apply(t, plan, links)                                                   // attach
	f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, []core.Link{ens5}) // detach ens6

	got := tree(t, f.dir)
	for name, content := range others {
		if got[name] != content {
			t.Errorf("%s was changed or removed", name)
		}
		fi, err := os.Stat(filepath.Join(f.dir, name))
		if err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode changed to %v", name, fi.Mode().Perm())
		}
	}
	if _, ok := got["70-ens6.network"]; ok {
		t.Error("70-ens6.network survived detach")
	}
}

// TestReattachUnderNewNameLeavesNoStaleFiles is #166: the ENI comes back as ens7 with the same MAC.
func TestReattachUnderNewNameLeavesNoStaleFiles(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	f.apply(t, plan, links)

	ens7 := ens6
	ens7.Name, ens7.Index = "ens7", 5
	p7 := secondaryIPv4()
	p7.Name, p7.Index = "ens7", 5
	ch := f.apply(t, core.Plan{Interfaces: []core.InterfacePlan{plantest.Primary(), p7}}, []core.Link{ens5, ens7})

	for _, k := range keys(tree(t, f.dir)) {
		if strings.HasPrefix(k, "70-ens6.") {
			t.Errorf("stale file left: %s", k)
		}
	}
	if n := len(ch.Written); n != 4 {
		t.Errorf("wrote %d files for ens7, want 4", n)
	}
	if ch.Reloads != 1 {
		t.Errorf("reloads = %d, want 1 (ens7 is new)", ch.Reloads)
	}
	own := tree(t, f.dir)["70-ens7.network"]
	if !strings.Contains(own, "Name=ens7\n") || !strings.Contains(own, "MACAddress=02:aa:bb:cc:dd:ee\n") {
		t.Errorf("70-ens7.network does not match ens7 by name and MAC:\n%s", own)
	}
}

func TestWriteFailureRemovesNothing(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	f.apply(t, plan, links)

	// eni.conf cannot be replaced (a non-empty directory is in the way; this works as root too,
	// where a read-only mode would not stop the write). In the same apply ens6 loses its
	// secondaries, which would remove ec2net_alias.conf.
	eni := filepath.Join(f.dir, "70-ens6.network.d", ENIDropIn)
	if err := os.Remove(eni); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(eni, "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	plan.Interfaces[1].Addresses = nil
	plan.Interfaces[1].Routes = plan.Interfaces[1].Routes[:2] // and eni.conf would change anyway
	plan.Interfaces[0].Addresses = plan.Interfaces[0].Addresses[:1]

	rep, err := f.backend.Apply(context.Background(), plan, links)
	ch := rep.Changes
	if err == nil || !strings.Contains(err.Error(), "ens6") || !strings.Contains(err.Error(), eni) {
		t.Fatalf("Apply error = %v; want one naming ens6 and %s", err, eni)
	}
	if _, statErr := os.Stat(filepath.Join(f.dir, "70-ens6.network.d", AliasDropIn)); statErr != nil {
		t.Errorf("ec2net_alias.conf of the failed interface was removed: %v", statErr)
	}
	if len(ch.Removed) != 0 {
		t.Errorf("removed %v after an error", ch.Removed)
	}
	// The healthy interface is still applied, and networkd is told.
	if diff := cmp.Diff([]string{"70-ens5.network.d/ec2net_alias.conf"}, rel(f.dir, ch.Written)); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	if ch.Reloads != 1 {
		t.Errorf("reloads = %d, want 1 for ens5", ch.Reloads)
	}
	assertNoTempFiles(t, f.dir)
}

func TestDropInsGoNextToTheActiveForeignFile(t *testing.T) {
	f := newFixture(t)
	netplan := filepath.Join(f.dir, "10-netplan-ens5.network")
	if err := os.WriteFile(netplan, []byte("[Match]\nName=ens5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, links := twoENIs()

	// Before networkd has picked a file the agent writes its own; it takes over as soon as
	// networkd reports netplan's file, and goes back when networkd reports ours again.
	f.apply(t, plan, links)
	f.setNetworkFile(t, ens5.Index, netplan)
	f.setNetworkFile(t, ens6.Index, "/usr/lib/systemd/network/80-ec2.network") // the base: still ours
	ch := f.apply(t, plan, links)

	wantWritten := []string{"10-netplan-ens5.network.d/ec2net_alias.conf", "10-netplan-ens5.network.d/eni.conf"}
	wantRemoved := []string{"70-ens5.network", "70-ens5.network.d/ec2net_alias.conf", "70-ens5.network.d/eni.conf"}
	if diff := cmp.Diff(wantWritten, rel(f.dir, ch.Written)); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantRemoved, rel(f.dir, ch.Removed)); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if ch.Reloads != 1 {
		t.Errorf("reloads = %d, want 1", ch.Reloads)
	}
	got := tree(t, f.dir)
	if got["10-netplan-ens5.network"] != "[Match]\nName=ens5\n" {
		t.Error("netplan's file was changed")
	}
	if !strings.Contains(got["10-netplan-ens5.network.d/eni.conf"], "KeepConfiguration=dhcp") {
		t.Error("eni.conf for a foreign file does not keep the DHCP address across reloads")
	}
	if _, ok := got["70-ens6.network"]; !ok {
		t.Error("ens6, configured by the packaged base, did not get its own file")
	}

	if ch := f.apply(t, plan, links); ch.Changed() {
		t.Errorf("second apply with the foreign file changed something: %+v", ch)
	}

	// networkd reports our file again (netplan's went away): drop-ins move back.
	if err := os.Remove(netplan); err != nil {
		t.Fatal(err)
	}
	f.setNetworkFile(t, ens5.Index, filepath.Join(f.dir, "70-ens5.network"))
	ch = f.apply(t, plan, links)
	if diff := cmp.Diff(wantRemoved, rel(f.dir, ch.Written)); diff != "" {
		t.Errorf("written after moving back (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantWritten, rel(f.dir, ch.Removed)); diff != "" {
		t.Errorf("removed after moving back (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(netplan + ".d"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty 10-netplan-ens5.network.d left: %v", err)
	}
}

func TestUserOverrideInEtcKeepsOurDropInDirectory(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	f.setNetworkFile(t, ens6.Index, "/etc/systemd/network/70-ens6.network")
	f.apply(t, plan, links)
	if _, ok := tree(t, f.dir)["70-ens6.network.d/eni.conf"]; !ok {
		t.Error("a user's /etc/systemd/network/70-ens6.network must get our drop-ins in 70-ens6.network.d")
	}
}

func TestSharedForeignFileGetsNoDropIns(t *testing.T) {
	f := newFixture(t)
	shared := "/etc/systemd/network/50-dhcp.network" // [Match] Name=en*
	docker := core.Link{Name: "ens9", Index: 9, MAC: "02:00:00:00:09:09"}
	f.setNetworkFile(t, ens6.Index, shared)
	f.setNetworkFile(t, docker.Index, shared)
	plan, links := twoENIs()
	links = append(links, docker)

	rep, err := f.backend.Apply(context.Background(), plan, links)
	ch := rep.Changes
	if !errors.Is(err, ErrSharedNetworkFile) || !strings.Contains(err.Error(), "ens9") {
		t.Fatalf("Apply error = %v, want ErrSharedNetworkFile naming ens9", err)
	}
	for _, k := range keys(tree(t, f.dir)) {
		if strings.HasPrefix(k, "50-dhcp.network.d") {
			t.Errorf("drop-in written for a shared file: %s", k)
		}
	}
	if len(ch.Written) != len(twoENIFiles) {
		t.Errorf("wrote %d files, want our own %d", len(ch.Written), len(twoENIFiles))
	}
}

func TestStateLookupErrorLeavesInterfaceAlone(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	f.apply(t, plan, links)
	before := tree(t, f.dir)

	// The state file cannot be read (a directory in its place).
	if err := os.Mkdir(filepath.Join(f.state, strconv.Itoa(ens6.Index)), 0o755); err != nil {
		t.Fatal(err)
	}
	plan.Interfaces[1].Addresses = nil
	_, err := f.backend.Apply(context.Background(), plan, links)
	if err == nil || !strings.Contains(err.Error(), "ens6") {
		t.Fatalf("Apply error = %v, want one naming ens6", err)
	}
	if diff := cmp.Diff(before, tree(t, f.dir)); diff != "" {
		t.Errorf("files changed (-before +after):\n%s", diff)
	}
}

// TestUpgradeFrom2xRemovesStaleFilesOfDetachedInterfaces: 2.x left a MAC-only symlink and its
// drop-ins for every ENI ever attached since boot (#166); they must go, a user's file next to
// them must stay, and a present interface's 2.x files are replaced by ours.
func TestUpgradeFrom2xRemovesStaleFilesOfDetachedInterfaces(t *testing.T) {
	f := newFixture(t)
	base := "/usr/lib/systemd/network/80-ec2.network"
	for _, iface := range []string{"ens6", "ens9"} {
		if err := os.Symlink(base, filepath.Join(f.dir, "70-"+iface+".network")); err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(f.dir, "70-"+iface+".network.d")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{
			ENIDropIn:      "# Configuration for " + iface + " generated by policy-routes@" + iface + ".service\n",
			AliasDropIn:    "[Address]\nAddress=10.0.9.9/32\n",
			"99-user.conf": "[Network]\nLLMNR=yes\n",
		} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	plan, links := twoENIs()
	f.apply(t, plan, links)

	got := tree(t, f.dir)
	for _, gone := range []string{"70-ens9.network", "70-ens9.network.d/eni.conf", "70-ens9.network.d/ec2net_alias.conf"} {
		if _, ok := got[gone]; ok {
			t.Errorf("2.x file of detached ens9 left: %s", gone)
		}
	}
	for _, kept := range []string{"70-ens9.network.d/99-user.conf", "70-ens6.network.d/99-user.conf"} {
		if _, ok := got[kept]; !ok {
			t.Errorf("user file removed: %s", kept)
		}
	}
	if !strings.HasPrefix(got["70-ens6.network"], "# "+marker+"ens6 ") {
		t.Errorf("2.x symlink for present ens6 not replaced by our file: %q", got["70-ens6.network"])
	}
}

func TestFailedReloadIsRetriedByTheNextApply(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	f.reloader.err = errors.New("bus gone")
	rep, err := f.backend.Apply(context.Background(), plan, links)
	ch := rep.Changes
	if err == nil || !strings.Contains(err.Error(), "bus gone") || !strings.Contains(err.Error(), "70-ens6.network") {
		t.Fatalf("Apply error = %v; want the reload error naming the written files", err)
	}
	if ch.Reloads != 0 || len(ch.Written) != len(twoENIFiles) {
		t.Errorf("changes = %d written, %d reloads; want all written, 0 reloads", len(ch.Written), ch.Reloads)
	}

	f.reloader.err = nil
	ch = f.apply(t, plan, links)
	if len(ch.Written) != 0 || ch.Reloads != 1 {
		t.Errorf("retry: %d written, %d reloads; want 0 written, 1 reload", len(ch.Written), ch.Reloads)
	}
	if ch = f.apply(t, plan, links); ch.Reloads != 0 {
		t.Errorf("reload repeated after it succeeded")
	}
}

func TestStateDirNetworkFile(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"2": "# This is private data. Do not parse.\nADMIN_STATE=configured\nNETWORK_FILE=/run/systemd/network/10-netplan-ens5.network\nDNS=10.0.0.2\n",
		"3": "ADMIN_STATE=unmanaged\n",
		"4": "NETWORK_FILE=\"/etc/systemd/network/50 x.network\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		ifindex int
		want    string
	}{
		{2, "/run/systemd/network/10-netplan-ens5.network"},
		{3, ""}, // unmanaged: no key
		{4, "/etc/systemd/network/50 x.network"},
		{5, ""}, // no state file: link unknown to networkd
	}
	for _, tt := range tests {
		got, err := StateDir(dir).NetworkFile(tt.ifindex)
		if err != nil || got != tt.want {
			t.Errorf("NetworkFile(%d) = %q, %v; want %q", tt.ifindex, got, err, tt.want)
		}
	}
}

func TestDryRunReportsChangesAndTouchesNothing(t *testing.T) {
	f := newFixture(t)
	f.backend = New(Options{Dir: f.dir, StateDir: f.state, Reloader: f.reloader, DryRun: true})
	plan, links := twoENIs()
	ch := f.apply(t, plan, links)
	if len(ch.Written) == 0 || ch.Reloads != 1 {
		t.Errorf("dry run reported written=%v reloads=%d, want the files and the reload it would do", ch.Written, ch.Reloads)
	}
	if got := tree(t, f.dir); len(got) != 0 || f.reloader.calls != 0 {
		t.Errorf("dry run wrote %v and reloaded %d time(s); want nothing", got, f.reloader.calls)
	}
	// With the files in place, a dry run sees nothing to do.
	real := New(Options{Dir: f.dir, StateDir: f.state, Reloader: f.reloader})
	if _, err := real.Apply(context.Background(), plan, links); err != nil {
		t.Fatal(err)
	}
	if ch := f.apply(t, plan, links); ch.Changed() {
		t.Errorf("dry run on an up-to-date host reports %+v", ch)
	}
}

func outcomes(rep core.Report) map[string]core.Outcome {
	out := map[string]core.Outcome{}
	for _, ir := range rep.Interfaces {
		out[ir.Name] = ir.Outcome
	}
	return out
}

// TestAnInterfaceWhoseActiveFileIsUnknownFailsAndTheOtherIsConfigured: networkd's state of ens6
// cannot be read, so its files are not written (they might strip our drop-ins from the file that
// is active); ens5 goes on.
func TestAnInterfaceWhoseActiveFileIsUnknownFailsAndTheOtherIsConfigured(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	if err := os.Mkdir(filepath.Join(f.state, strconv.Itoa(ens6.Index)), 0o755); err != nil {
		t.Fatal(err)
	}
	rep, err := f.backend.Apply(context.Background(), plan, links)
	if err == nil {
		t.Fatal("Apply succeeded without knowing ens6's active file")
	}
	if diff := cmp.Diff(map[string]core.Outcome{"ens5": core.Configured, "ens6": core.Failed}, outcomes(rep)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if ir, _ := rep.Outcome(ens6.MAC); ir.Err == nil {
		t.Error("ens6 failed without its error")
	}
	if rep.Settled(plan) {
		t.Error("a pass with a failed interface is reported settled")
	}
}

// The actions a plan and the files on disk lead to, the same in a dry run as in a real one.
func TestActionsForAPlanAndTheFilesOnDisk(t *testing.T) {
	plan, links := twoENIs()
	file := func(rel string) string { return "%DIR%/" + rel }
	// Render's order: the .network file, then eni.conf, the policies, the aliases.
	var writeAll []string
	for _, rel := range []string{"70-ens5.network", "70-ens5.network.d/eni.conf", "70-ens5.network.d/ec2net_alias.conf",
		"70-ens6.network", "70-ens6.network.d/eni.conf", "70-ens6.network.d/ec2net_policy_4.conf",
		"70-ens6.network.d/ec2net_alias.conf"} {
		writeAll = append(writeAll, "write "+file(rel))
	}
	for _, tc := range []struct {
		name    string
		before  func(f *fixture)
		plan    func(p *core.Plan)
		links   []core.Link
		actions []string
	}{
		{name: "first apply", actions: append(slices.Clone(writeAll), "reload systemd-networkd")},
		{name: "nothing changed", before: func(f *fixture) { f.apply(t, plan, links) }},
		{
			name:   "last secondary address unassigned",
			before: func(f *fixture) { f.apply(t, plan, links) },
			plan:   func(p *core.Plan) { p.Interfaces[1].Addresses = nil },
			actions: []string{"remove " + file("70-ens6.network.d/ec2net_alias.conf"),
				"remove-if-empty " + file("70-ens6.network.d"), "reload systemd-networkd"},
		},
		{
			name:   "ens6 detached: its files go, no reload",
			before: func(f *fixture) { f.apply(t, plan, links) },
			plan:   func(p *core.Plan) { p.Interfaces = p.Interfaces[:1] },
			links:  links[:1],
			actions: []string{
				"remove " + file("70-ens6.network"), "remove " + file("70-ens6.network.d/eni.conf"),
				"remove " + file("70-ens6.network.d/ec2net_policy_4.conf"),
				"remove " + file("70-ens6.network.d/ec2net_alias.conf"), "remove-if-empty " + file("70-ens6.network.d"),
			},
		},
	} {
		for _, dry := range []bool{true, false} {
			f := newFixture(t)
			if tc.before != nil {
				tc.before(f)
			}
			p := core.Plan{Interfaces: slices.Clone(plan.Interfaces)}
			if tc.plan != nil {
				tc.plan(&p)
			}
			l := links
			if tc.links != nil {
				l = tc.links
			}
			b := New(Options{Dir: f.dir, StateDir: f.state, Reloader: f.reloader, DryRun: dry})
			if _, err := b.Apply(context.Background(), p, l); err != nil {
				t.Fatalf("%s (dry run %v): %v", tc.name, dry, err)
			}
			var got []string
			for _, a := range b.Actions() {
				got = append(got, replaceDir(a, f.dir))
			}
			if diff := cmp.Diff(tc.actions, got); diff != "" {
				t.Errorf("%s (dry run %v): actions (-want +got):\n%s", tc.name, dry, diff)
			}
		}
	}
}

func replaceDir(s, dir string) string { return strings.Replace(s, dir, "%DIR%", 1) }

// Issue #14: kill -9 during a write left .70-ens7.network.<n>.tmp in the directory for good. The
// first Apply after a start removes the temporary files of ours, and nothing else.
func TestTemporaryFilesOfAKilledWriteAreRemovedAtStart(t *testing.T) {
	f := newFixture(t)
	stale := []string{".70-ens7.network.2511443.tmp", "70-ens6.network.d/.eni.conf.77.tmp"}
	theirs := []string{".70-ens7.network.swp", "10-netplan-ens5.network"}
	for _, rel := range append(slices.Clone(stale), theirs...) {
		p := filepath.Join(f.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plan, links := twoENIs()
	f.apply(t, plan, links)
	files := tree(t, f.dir)
	for _, rel := range stale {
		if _, ok := files[rel]; ok {
			t.Errorf("%s is still there", rel)
		}
	}
	for _, rel := range theirs {
		if _, ok := files[rel]; !ok {
			t.Errorf("%s, not ours, was removed", rel)
		}
	}
}

// fakeKernel records the rules and addresses the backend puts into the kernel itself.
type fakeKernel struct {
	rules []core.Rule
	addrs map[string][]netip.Prefix
	// leases are the DHCPv4 addresses networkd put on the links, by name. Only a test that sets
	// it gets answers from Addresses.
	leases map[string]netip.Prefix
}

// Addresses answers only for a test that set leases; others get an error, which checkLeases
// takes as "cannot tell" and so does not wait for the lease.
func (k *fakeKernel) Addresses(link core.Link) ([]netip.Prefix, error) {
	if k.leases == nil {
		return nil, errors.New("fake kernel: no address listing in this test")
	}
	out := slices.Clone(k.addrs[link.Name])
	if l, ok := k.leases[link.Name]; ok {
		out = append(out, l)
	}
	return out, nil
}

func (k *fakeKernel) Rules(lo, hi int) ([]core.Rule, error) {
	var out []core.Rule
	for _, r := range k.rules {
		if r.Priority >= lo && r.Priority <= hi {
			out = append(out, r)
		}
	}
	return out, nil
}

func (k *fakeKernel) EnsureRules(want []core.Rule) ([]core.Rule, error) {
	var added []core.Rule
	for _, r := range want {
		if !slices.Contains(k.rules, r) {
			k.rules = append(k.rules, r)
			added = append(added, r)
		}
	}
	return added, nil
}

func (k *fakeKernel) DeleteRules(rules []core.Rule) error {
	for _, r := range rules {
		k.rules = slices.DeleteFunc(k.rules, func(h core.Rule) bool { return h == r })
	}
	return nil
}

func (k *fakeKernel) SyncAddresses(link core.Link, want, owned []netip.Prefix) (added, removed []netip.Prefix, err error) {
	if k.addrs == nil {
		k.addrs = map[string][]netip.Prefix{}
	}
	have := k.addrs[link.Name]
	for _, a := range want {
		if !slices.Contains(have, a) {
			have = append(have, a)
			added = append(added, a)
		}
	}
	for _, a := range owned {
		if !slices.Contains(want, a) && slices.Contains(have, a) {
			have = slices.DeleteFunc(have, func(h netip.Prefix) bool { return h == a })
			removed = append(removed, a)
		}
	}
	k.addrs[link.Name] = have
	return added, removed, nil
}
