package ifcfg

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

const (
	netScripts = "etc/sysconfig/network-scripts/"
	state      = "run/ec2-net-utils/ifcfg/"
)

// knobsSetup is the "knobs" scenario: eth0 primary, eth1 with 10.0.1.10 (DHCP), 10.0.1.11 and
// the prefix 10.0.1.64/28, table 10001.
func knobsSetup(t *testing.T) (*fixture, core.Plan, []core.Link) {
	t.Helper()
	plan, links := planFor(t, "knobs", nil)
	return newFixture(t, links), plan, links
}

func TestEditedRouteFileIsLeftAloneAndSurvivesDetach(t *testing.T) {
	f, plan, links := knobsSetup(t)
	f.apply(t, plan, links)
	edited := f.read(t, netScripts+"route-eth1") + "10.8.0.0/16 via 10.0.1.1 dev eth1 table 10001\n"
	f.write(t, netScripts+"route-eth1", edited)

	// MAINROUTETABLE changes what route-eth1 would say; the administrator's version stays.
	plan.Interfaces[1].MainDefaultRoute = false
	ch := f.apply(t, plan, links)
	if got := f.read(t, netScripts+"route-eth1"); got != edited {
		t.Errorf("edited route-eth1 was rewritten:\n%s", got)
	}
	if slices.Contains(ch.Written, f.path(netScripts+"route-eth1")) {
		t.Errorf("Changes claim route-eth1 was written: %v", ch.Written)
	}
	if !strings.Contains(f.read(t, netScripts+"ifcfg-eth1"), "MAINROUTETABLE=no") {
		t.Errorf("the unedited ifcfg-eth1 was not updated")
	}

	f.kernel.detach(3)
	f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, links[:1])
	if got := f.read(t, netScripts+"route-eth1"); got != edited {
		t.Errorf("detach removed or changed the edited route-eth1")
	}
	for _, rel := range []string{netScripts + "ifcfg-eth1", netScripts + "rule-eth1", "etc/dhcp/dhclient-eth1.conf", state + "eth1.json"} {
		if f.exists(rel) {
			t.Errorf("%s still exists after detach", rel)
		}
	}
}

func TestForeignFilesAreNeverTouched(t *testing.T) {
	f, plan, links := knobsSetup(t)
	onex := onePointX("eth1", "00:00:5e:00:53:01")
	custom := "10.8.0.0/16 via 10.0.0.1 dev eth0\n" // the image's own static route for eth0
	f.write(t, netScripts+"ifcfg-eth1", onex)
	f.write(t, netScripts+"route-eth0", custom)
	f.write(t, netScripts+"ifcfg-eth0", "DEVICE=eth0\nBOOTPROTO=dhcp\n")
	f.apply(t, plan, links)
	f.kernel.detach(3)
	f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, links[:1])
	if f.read(t, netScripts+"ifcfg-eth1") != onex || f.read(t, netScripts+"route-eth0") != custom ||
		f.read(t, netScripts+"ifcfg-eth0") != "DEVICE=eth0\nBOOTPROTO=dhcp\n" {
		t.Errorf("a file without the agent's header was rewritten or removed")
	}
}

func TestEC2SyncNoLeavesTheInterfaceAloneEverywhere(t *testing.T) {
	f, plan, links := knobsSetup(t)
	f.write(t, netScripts+"ifcfg-eth1", onePointX("eth1", "00:00:5e:00:53:01", "EC2SYNC=no"))
	// Someone else's rule in our band for eth1's table: EC2SYNC=no means hands off.
	theirs := core.Rule{Family: core.IPv4, From: mustPrefix("10.0.1.99/32"), Table: 10001, Priority: 10001}
	f.kernel.rules = append(f.kernel.rules, theirs)

	rep, err := f.backend.Apply(context.Background(), plan, links)
	if err != nil {
		t.Fatal(err)
	}
	var configured []string
	for _, ir := range rep.Interfaces {
		if ir.Outcome == core.Configured {
			configured = append(configured, ir.Name)
		}
	}
	if !slices.Equal(configured, []string{"eth0"}) {
		t.Fatalf("report configures %v, want eth0 only", rep.Interfaces)
	}
	if !slices.ContainsFunc(rep.Interfaces, func(i core.InterfaceReport) bool {
		return i.Name == "eth1" && i.Outcome == core.LeftAlone && strings.Contains(i.Reason, "EC2SYNC=no in "+f.path(netScripts+"ifcfg-eth1"))
	}) {
		t.Errorf("eth1 is not reported left alone with the file that says so: %v", rep.Interfaces)
	}

	f.apply(t, plan, links) // a second pass leaves it alone too
	if f.kernel.up[3] || len(f.kernel.addrs[3]) > 0 || len(f.dhcp.procs) > 0 {
		t.Errorf("eth1 was touched: up=%v addrs=%v dhclients=%v", f.kernel.up[3], f.kernel.addrs[3], f.dhcp.procs)
	}
	if rs, _ := f.kernel.Rules(10001, 10001); len(rs) != 1 || rs[0] != theirs {
		t.Errorf("rules at 10001 = %v, want only the one that was there", rs)
	}
	for _, k := range []Kind{KindRoute, KindRoute6, KindRule, KindRule6} {
		if f.exists(netScripts + string(k) + "-eth1") {
			t.Errorf("%s-eth1 written for an EC2SYNC=no interface", k)
		}
	}
}

func TestDetachStopsDHClientAndRemovesEverythingOfTheENI(t *testing.T) {
	plan, links := planFor(t, "secondary-basic", nil)
	f := newFixture(t, links)
	f.kernel.ra[3] = mustAddr("fe80::1")
	foreign := []core.Rule{
		{Family: core.IPv4, From: mustPrefix("10.99.1.77/32"), Table: 10001, Priority: 1536},     // VPC CNI pod rule
		{Family: core.IPv4, From: mustPrefix("192.0.2.0/24"), Table: 200, Priority: 10001},       // a user's, at our priority
		{Family: core.IPv4, From: mustPrefix("192.168.10.21/32"), Table: 10001, Priority: 32765}, // nodeadm
	}
	f.kernel.rules = append(f.kernel.rules, foreign...)
	f.apply(t, plan, links)
	if len(f.dhcp.procs) != 2 {
		t.Fatalf("dhclients %v, want -4 and -6 for eth1", f.dhcp.procs)
	}

	f.kernel.detach(3)
	ch := f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, links[:1])
	if ch.Reloads != 0 {
		t.Errorf("detach started %d dhclients", ch.Reloads)
	}
	if len(f.dhcp.procs) != 0 || f.dhcp.stops != 2 {
		t.Errorf("after detach: dhclients %v, %d stopped; want none left, 2 stopped", f.dhcp.procs, f.dhcp.stops)
	}
	if !slices.Contains(f.dhcp.removed, "eth1 -4") || !slices.Contains(f.dhcp.removed, "eth1 -6") {
		t.Errorf("lease and pid files not removed: %v", f.dhcp.removed)
	}
	if rs, _ := f.kernel.RoutesInTable(10001); len(rs) != 0 {
		t.Errorf("table 10001 still has %v", rs)
	}
	var left []core.Rule
	for _, r := range f.kernel.rules {
		if r.Table == 10001 || r.Priority == 10001 {
			left = append(left, r)
		}
	}
	if !slices.Equal(left, foreign) {
		t.Errorf("rules left at 10001 or into table 10001: %v, want exactly the foreign ones %v", left, foreign)
	}
	if got := f.tree(t, "etc"); len(got) != 1 || got[netScripts+"route-eth0"] == "" {
		t.Errorf("files left: %v, want route-eth0 only", keys(got))
	}
	if f.exists(state + "eth1.json") {
		t.Errorf("state of eth1 kept")
	}
	if ch := f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, links[:1]); ch.Changed() {
		t.Errorf("the pass after detach changed %v %v", ch.Written, ch.Removed)
	}
}

func TestDetachAfterAgentRestartStillCleansUp(t *testing.T) {
	f, plan, links := knobsSetup(t)
	f.apply(t, plan, links)
	// A new agent process knows only what is on disk; the ENI goes while it starts.
	b, err := New(Options{Dir: f.backend.paths.Dir, DHClientConfDir: f.backend.paths.DHClientConfDir,
		StateDir: f.backend.stateDir, Kernel: f.kernel, DHCP: f.dhcp})
	if err != nil {
		t.Fatal(err)
	}
	f.backend = b
	f.kernel.detach(3)
	f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, links[:1])
	if rs, _ := f.kernel.Rules(10001, 10001); len(rs) != 0 || len(f.dhcp.procs) != 0 {
		t.Errorf("after restart and detach: rules %v, dhclients %v", rs, f.dhcp.procs)
	}
}

func TestCleanupThatFailsIsRetriedAtTheNextPass(t *testing.T) {
	f, plan, links := knobsSetup(t)
	f.apply(t, plan, links)
	f.kernel.detach(3)
	f.dhcp.stopErr = errors.New("operation not permitted")
	if _, err := f.backend.Apply(context.Background(), core.Plan{Interfaces: plan.Interfaces[:1]}, links[:1]); err == nil {
		t.Fatal("Apply hid the failed stop")
	}
	f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, links[:1])
	if len(f.dhcp.procs) != 0 || f.exists(state+"eth1.json") {
		t.Errorf("second pass did not finish the cleanup: dhclients %v", f.dhcp.procs)
	}
}

func TestTableOfADetachedENIInUseByAnotherLinkIsKept(t *testing.T) {
	f, plan, links := knobsSetup(t)
	f.apply(t, plan, links)
	// udev renamed eth1 to ens6: same ENI, same table, new name.
	f.kernel.detach(3)
	renamed := core.Link{Name: "ens6", Index: 7, MAC: "00:00:5e:00:53:01", Driver: "ena"}
	f.kernel.links[7] = renamed
	p := plan.Interfaces[1]
	p.Name, p.Index = "ens6", 7
	f.apply(t, core.Plan{Interfaces: []core.InterfacePlan{plan.Interfaces[0], p}}, []core.Link{links[0], renamed})
	if rs, _ := f.kernel.Rules(10001, 10001); len(rs) != 3 {
		t.Errorf("rules of table 10001 = %v, want ens6's three", rs)
	}
	if rs, _ := f.kernel.RoutesInTable(10001); len(rs) != 2 {
		t.Errorf("table 10001 = %v, want ens6's two routes", rs)
	}
	if f.exists(netScripts+"ifcfg-eth1") || !f.exists(netScripts+"ifcfg-ens6") {
		t.Errorf("files did not follow the rename")
	}
	if _, ok := f.dhcp.procs["eth1 -4"]; ok {
		t.Errorf("eth1's dhclient still runs")
	}
	if _, ok := f.dhcp.procs["ens6 -4"]; !ok {
		t.Errorf("no dhclient for ens6")
	}
}

func TestAddressesTheAgentDidNotAssignAreNeverRemoved(t *testing.T) {
	f, plan, links := knobsSetup(t)
	users := mustPrefix("10.0.1.200/32")
	f.kernel.addrs[3] = []netip.Prefix{users}
	f.apply(t, plan, links)

	plan.Interfaces[1].Addresses = nil // 10.0.1.11 unassigned in EC2
	ch := f.apply(t, plan, links)
	if got := f.kernel.addrs[3]; !slices.Equal(got, []netip.Prefix{users}) {
		t.Errorf("eth1 addresses = %v, want only the administrator's %v", got, users)
	}
	if !slices.Contains(ch.Removed, "eth1: address 10.0.1.11/32") {
		t.Errorf("Changes.Removed = %v, want the secondary address", ch.Removed)
	}
}

func TestStaleRuleAtOurPriorityIsRemoved(t *testing.T) {
	f, plan, links := knobsSetup(t)
	f.apply(t, plan, links)
	plan.Interfaces[1].Rules = slices.DeleteFunc(slices.Clone(plan.Interfaces[1].Rules), func(r core.Rule) bool {
		return r.From == mustPrefix("10.0.1.11/32")
	})
	ch := f.apply(t, plan, links)
	if rs, _ := f.kernel.Rules(10001, 10001); len(rs) != 2 {
		t.Errorf("rules = %v, want two left", rs)
	}
	if !slices.Contains(ch.Removed, "eth1: rule 10001: from 10.0.1.11 lookup 10001") {
		t.Errorf("Changes.Removed = %v", ch.Removed)
	}
	if strings.Contains(f.read(t, netScripts+"rule-eth1"), "10.0.1.11") {
		t.Errorf("rule-eth1 still has the removed address")
	}
}

func TestDHClientIsRestartedOnlyWhenItsParametersChange(t *testing.T) {
	f, plan, links := knobsSetup(t)
	if ch := f.apply(t, plan, links); ch.Reloads != 1 {
		t.Fatalf("first apply: %d dhclient starts, want 1", ch.Reloads)
	}
	if ch := f.apply(t, plan, links); ch.Changed() {
		t.Errorf("second apply changed %v %v (%d reloads)", ch.Written, ch.Removed, ch.Reloads)
	}
	plan.Interfaces[1].MainDefaultRoute = false
	ch := f.apply(t, plan, links)
	if ch.Reloads != 1 || f.dhcp.stops != 1 {
		t.Errorf("MAINROUTETABLE change: %d starts, %d stops; want one restart", ch.Reloads, f.dhcp.stops)
	}
	if args := strings.Join(f.dhcp.procs["eth1 -4"].Args, " "); !strings.Contains(args, "EC2NET_MAIN_DEFAULT=no") {
		t.Errorf("restarted dhclient runs with %s", args)
	}
}

func TestDHClientStartedBySomeoneElseIsAdopted(t *testing.T) {
	f, plan, links := knobsSetup(t)
	theirs := f.dhcp.adopt("eth1", core.IPv4)
	ch := f.apply(t, plan, links)
	if ch.Reloads != 0 || f.dhcp.stops != 0 || f.dhcp.procs["eth1 -4"].Pid != theirs.Pid {
		t.Errorf("initscripts' dhclient replaced: %d starts, %d stops", ch.Reloads, f.dhcp.stops)
	}
	// It is stopped on detach all the same: dhclient never exits by itself.
	f.kernel.detach(3)
	f.apply(t, core.Plan{Interfaces: plan.Interfaces[:1]}, links[:1])
	if len(f.dhcp.procs) != 0 {
		t.Errorf("dhclient left after detach: %v", f.dhcp.procs)
	}
}

func TestIPv6DHClientStopsWhenTheENILosesIPv6(t *testing.T) {
	plan, links := planFor(t, "secondary-basic", nil)
	f := newFixture(t, links)
	f.apply(t, plan, links)
	p := &plan.Interfaces[1]
	p.IPv6 = false
	p.Rules = slices.DeleteFunc(p.Rules, func(r core.Rule) bool { return r.Family == core.IPv6 })
	p.Routes = slices.DeleteFunc(p.Routes, func(r core.Route) bool { return r.Destination.Addr().Is6() })
	ch := f.apply(t, plan, links)
	if _, ok := f.dhcp.procs["eth1 -6"]; ok {
		t.Errorf("dhclient -6 still runs")
	}
	if _, ok := f.dhcp.procs["eth1 -4"]; !ok || ch.Reloads != 0 {
		t.Errorf("dhclient -4 was touched (%d starts)", ch.Reloads)
	}
	if f.exists(netScripts+"route6-eth1") || f.exists(netScripts+"rule6-eth1") {
		t.Errorf("IPv6 files kept")
	}
	if !strings.Contains(f.read(t, netScripts+"ifcfg-eth1"), "DHCPV6C=no") {
		t.Errorf("ifcfg-eth1 still asks initscripts for DHCPv6")
	}
}

func TestAnotherENIUnderTheSameNameStartsFresh(t *testing.T) {
	f, plan, links := knobsSetup(t)
	f.apply(t, plan, links)
	// eth1 detached and, before the agent saw it, another ENI (device 2) attached as eth1.
	f.kernel.detach(3)
	other := core.Link{Name: "eth1", Index: 9, MAC: "00:00:5e:00:53:09", Driver: "ena"}
	f.kernel.links[9] = other
	p := plan.Interfaces[1]
	p.Index, p.MAC, p.Table, p.Priority, p.Metric = 9, other.MAC, 10002, 10002, 514
	for i := range p.Rules {
		p.Rules[i].Table, p.Rules[i].Priority = 10002, 10002
	}
	for i := range p.Routes {
		p.Routes[i].Table = 10002
	}
	f.apply(t, core.Plan{Interfaces: []core.InterfacePlan{plan.Interfaces[0], p}}, []core.Link{links[0], other})
	if rs, _ := f.kernel.Rules(10001, 10001); len(rs) != 0 {
		t.Errorf("the old ENI's rules stay: %v", rs)
	}
	if f.dhcp.stops != 1 || !strings.Contains(strings.Join(f.dhcp.procs["eth1 -4"].Args, " "), "EC2NET_METRIC=514") {
		t.Errorf("dhclient not restarted for the new ENI: %d stops, %v", f.dhcp.stops, f.dhcp.procs)
	}
	if !strings.Contains(f.read(t, netScripts+"ifcfg-eth1"), "HWADDR=00:00:5e:00:53:09") {
		t.Errorf("ifcfg-eth1 still names the old MAC")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	plan, links := planFor(t, "knobs", nil)
	f := newFixtureWith(t, links, func(o *Options) { o.DryRun = true })
	ch := f.apply(t, plan, links)
	if len(ch.Written) == 0 || ch.Reloads != 1 {
		t.Errorf("dry run reports %v, %d reloads; want the files and one dhclient start", ch.Written, ch.Reloads)
	}
	if got := f.tree(t, "."); len(got) != 0 {
		t.Errorf("dry run wrote %v", keys(got))
	}
	if len(f.kernel.rules)+len(f.kernel.routes)+len(f.kernel.up)+len(f.dhcp.procs) != 0 {
		t.Errorf("dry run changed the kernel or started dhclient:\n%s%s", f.kernel.dump(), f.dhcp.dump())
	}
}

func TestRoute6NamesTheRouterOnceAnAdvertisementArrived(t *testing.T) {
	plan, links := planFor(t, "secondary-basic", nil)
	f := newFixture(t, links)
	f.apply(t, plan, links) // no RA yet: not an error, the route waits
	if strings.Contains(f.read(t, netScripts+"route6-eth1"), "default") {
		t.Errorf("route6-eth1 has a default route before any RA")
	}
	f.kernel.ra[3] = mustAddr("fe80::1")
	f.apply(t, plan, links)
	if !strings.Contains(f.read(t, netScripts+"route6-eth1"), "default via fe80::1 dev eth1 proto static table 10001") {
		t.Errorf("route6-eth1 after the RA:\n%s", f.read(t, netScripts+"route6-eth1"))
	}
}

func TestParseKnobs(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		content string
		want    Knobs
	}{
		{"EC2SYNC=no\n", Knobs{Sync: &no}},
		{"  MAINROUTETABLE=\"no\"  # cross-account ENI\n", Knobs{MainRouteTable: &no}},
		{"EC2PROVISIONPFXIPS='yes'\n", Knobs{ProvisionPrefixIPs: &yes}},
		{"EC2PROVISIONPFXIPS=\n", Knobs{}}, // what 1.x writes by default
		{"MAINROUTETABLE=no\nMAINROUTETABLE=yes\n", Knobs{MainRouteTable: &yes}},
		{"#MAINROUTETABLE=no\nXMAINROUTETABLE=no\n", Knobs{}},
		{"EC2SYNC=maybe\n", Knobs{}},
	} {
		got := ParseKnobs([]byte(tc.content))
		if got.Describe() != tc.want.Describe() {
			t.Errorf("ParseKnobs(%q) = %q, want %q", tc.content, got.Describe(), tc.want.Describe())
		}
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
