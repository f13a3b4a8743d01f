package netlinkx

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// netipEqual lets cmp compare netip values (unexported fields) by value.
var netipEqual = cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})

var sortRules = cmpopts.SortSlices(func(a, b core.Rule) bool {
	return a.Priority < b.Priority || a.Priority == b.Priority && a.From.String() < b.From.String()
})

func rule(from string, table int) core.Rule {
	p := netip.MustParsePrefix(from)
	return core.Rule{Family: core.FamilyOf(p.Addr()), From: p, Table: table, Priority: table}
}

// foreignRules are what other tenants keep in the same kernel: the VPC CNI's 1536 and 32765
// ("from <pod> lookup main" / "from all lookup <eni table>") and, inside our band, a rule of a
// shape we never write.
func addForeignRules(t *testing.T, n *testNetns) []netlink.Rule {
	t.Helper()
	cni := netlink.NewRule()
	cni.Priority, cni.Table, cni.Src = 1536, unix.RT_TABLE_MAIN, mustIPNet("10.0.1.99/32")
	catchAll := netlink.NewRule()
	catchAll.Priority, catchAll.Family, catchAll.Table = 32765, netlink.FAMILY_V4, 10001
	withIif := netlink.NewRule()
	withIif.Priority, withIif.Table, withIif.Src, withIif.IifName = 10001, 10001, mustIPNet("10.0.1.7/32"), "lo"
	var added []netlink.Rule
	for _, r := range []*netlink.Rule{cni, catchAll, withIif} {
		if err := n.nl.RuleAdd(r); err != nil {
			t.Fatalf("ip rule add %s: %v", r, err)
		}
		added = append(added, *r)
	}
	return added
}

func mustIPNet(s string) *net.IPNet {
	return ipNet(netip.MustParsePrefix(s))
}

// rawRules dumps every rule outside the band, with everything netlink reports, to prove that
// nothing there changed.
func rawRulesOutside(t *testing.T, n *testNetns, lo, hi int) []netlink.Rule {
	t.Helper()
	all, err := n.nl.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(all, func(r netlink.Rule) bool { return r.Priority >= lo && r.Priority <= hi })
}

func TestEnsureRulesAddsMissingRulesOnceAndLeavesForeignRulesAlone(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	addForeignRules(t, n)
	x := New(n.nl, InNetns(n.ns))
	want := []core.Rule{
		rule("10.0.1.7/32", 10001),
		rule("10.0.1.8/32", 10001),
		rule("10.0.9.0/28", 10001), // delegated prefix
		rule("2600:1f14::7/128", 10001),
		rule("10.0.2.7/32", 10002),
	}
	// One of them is already there, added by someone else with another proto.
	pre, _ := toNetlinkRule(want[1])
	if err := n.nl.RuleAdd(pre); err != nil {
		t.Fatal(err)
	}
	before := rawRulesOutside(t, n, 10001, 10002)

	added, err := x.EnsureRules(want)
	if err != nil {
		t.Fatal(err)
	}
	wantAdded := []core.Rule{want[0], want[2], want[3], want[4]}
	if diff := cmp.Diff(wantAdded, added, netipEqual); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	again, err := x.EnsureRules(want)
	if err != nil || len(again) != 0 {
		t.Errorf("second EnsureRules added %v (err %v), want nothing", again, err)
	}

	got, err := x.Rules(10000, 19999)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, sortRules, netipEqual); diff != "" {
		t.Errorf("Rules(10000, 19999) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, rawRulesOutside(t, n, 10001, 10002)); diff != "" {
		t.Errorf("rules outside our priorities changed (-before +after):\n%s", diff)
	}
	// The iif rule at 10001 is foreign and must still be there.
	all, _ := n.nl.RuleList(netlink.FAMILY_V4)
	if !slices.ContainsFunc(all, func(r netlink.Rule) bool { return r.IifName == "lo" && r.Priority == 10001 }) {
		t.Error("foreign iif rule at 10001 is gone")
	}
	// Ours carry proto static, like networkd's.
	for _, r := range all {
		if r.Priority == 10002 && r.Protocol != unix.RTPROT_STATIC {
			t.Errorf("rule %s has proto %d, want static", r, r.Protocol)
		}
	}
}

func TestRulesReportsOnlyPlainSourceRulesInTheBand(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	addForeignRules(t, n)
	x := New(n.nl, InNetns(n.ns))
	if _, err := x.EnsureRules([]core.Rule{rule("10.0.1.7/32", 10001)}); err != nil {
		t.Fatal(err)
	}
	got, err := x.Rules(core.OwnedPriorityMin, core.OwnedPriorityMax)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]core.Rule{rule("10.0.1.7/32", 10001)}, got, netipEqual); diff != "" {
		t.Errorf("Rules (-want +got):\n%s", diff)
	}
	// The full range shows the foreign plain rules too, "from all" as 0.0.0.0/0.
	got, err = x.Rules(0, 40000)
	if err != nil {
		t.Fatal(err)
	}
	cni := core.Rule{Family: core.IPv4, From: netip.MustParsePrefix("10.0.1.99/32"), Table: unix.RT_TABLE_MAIN, Priority: 1536}
	if !slices.Contains(got, cni) {
		t.Errorf("Rules(0, 40000) = %v, missing %v", got, cni)
	}
	catchAll := core.Rule{Family: core.IPv4, From: netip.MustParsePrefix("0.0.0.0/0"), Table: 10001, Priority: 32765}
	if !slices.Contains(got, catchAll) {
		t.Errorf("Rules(0, 40000) = %v, missing %v", got, catchAll)
	}
}

func TestDeleteRulesDeletesExactlyTheGivenRules(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	foreign := addForeignRules(t, n)
	x := New(n.nl, InNetns(n.ns))
	ours := []core.Rule{rule("10.0.1.7/32", 10001), rule("10.0.1.8/32", 10001), rule("2600:1f14::7/128", 10001)}
	if _, err := x.EnsureRules(ours); err != nil {
		t.Fatal(err)
	}

	if err := x.DeleteRules(ours[1:]); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteRules(ours[1:]); err != nil {
		t.Errorf("deleting already deleted rules: %v", err)
	}
	got, err := x.Rules(core.OwnedPriorityMin, core.OwnedPriorityMax)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ours[:1], got, netipEqual); diff != "" {
		t.Errorf("rules left (-want +got):\n%s", diff)
	}
	all, _ := n.nl.RuleList(netlink.FAMILY_V4)
	for _, f := range foreign {
		if !slices.ContainsFunc(all, func(r netlink.Rule) bool {
			return r.Priority == f.Priority && r.Table == f.Table && r.IifName == f.IifName
		}) {
			t.Errorf("foreign rule %s was deleted", f)
		}
	}
}

func TestRuleKeysMatchTheWayTheKernelDoes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b core.Rule
		same bool
	}{
		{"host bits ignored", rule("10.0.1.7/24", 10001), rule("10.0.1.0/24", 10001), true},
		{"from all spelled two ways", core.Rule{Family: core.IPv6, Table: 7, Priority: 7},
			core.Rule{Family: core.IPv6, From: netip.MustParsePrefix("::/0"), Table: 7, Priority: 7}, true},
		{"families differ", core.Rule{Family: core.IPv4, Table: 7, Priority: 7}, core.Rule{Family: core.IPv6, Table: 7, Priority: 7}, false},
		{"priority differs", rule("10.0.1.7/32", 10001), core.Rule{Family: core.IPv4, From: netip.MustParsePrefix("10.0.1.7/32"), Table: 10001, Priority: 10002}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keyOf(tt.a) == keyOf(tt.b); got != tt.same {
				t.Errorf("keyOf(%v) == keyOf(%v) is %v, want %v", tt.a, tt.b, got, tt.same)
			}
		})
	}
}

func TestToNetlinkRuleRejectsIncompleteRules(t *testing.T) {
	t.Parallel()
	for _, r := range []core.Rule{
		{From: netip.MustParsePrefix("10.0.1.7/32"), Priority: 10001},                          // no table
		{Family: core.IPv6, From: netip.MustParsePrefix("10.0.1.7/32"), Table: 1, Priority: 1}, // family mismatch
		{Table: 1, Priority: 1}, // no family at all
	} {
		if _, err := toNetlinkRule(r); err == nil {
			t.Errorf("toNetlinkRule(%+v) accepted", r)
		}
	}
}

// Deleting ours[0], the rule a foreign "iif lo" rule shadows (same priority, table and source),
// must never take the foreign one: the kernel would match the first of the two.
func TestDeleteRulesNeverTakesAForeignRuleWithTheSameSelectors(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	foreign := addForeignRules(t, n)
	x := New(n.nl, InNetns(n.ns))
	ours := rule("10.0.1.7/32", 10001)
	if _, err := x.EnsureRules([]core.Rule{ours}); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteRules([]core.Rule{ours}); err == nil {
		t.Error("DeleteRules reported no problem although it could not delete safely")
	}
	all, _ := n.nl.RuleList(netlink.FAMILY_V4)
	for _, f := range foreign {
		if !slices.ContainsFunc(all, func(r netlink.Rule) bool {
			return r.Priority == f.Priority && r.Table == f.Table && r.IifName == f.IifName
		}) {
			t.Errorf("foreign rule %s was deleted", f)
		}
	}
}
