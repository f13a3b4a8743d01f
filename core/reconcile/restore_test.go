package reconcile

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// twoENIsWithASecondary is twoENIs with a secondary address on ens6 (10.0.1.11/32).
func twoENIsWithASecondary() core.Instance {
	inst := twoENIs()
	inst.ENIs[1].LocalIPv4s = append(inst.ENIs[1].LocalIPv4s, netip.MustParseAddr("10.0.1.11"))
	return inst
}

var (
	ens6Default = core.Route{Table: 10001, Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.1.1")}
	ens6Subnet  = core.Route{Table: 10001, Destination: netip.MustParsePrefix("10.0.1.0/24")}
	ens6Second  = netip.MustParsePrefix("10.0.1.11/32")
)

// newRestoreHarness runs the loop over ens5 and ens6 with every route, address and rule in place.
func newRestoreHarness(t *testing.T) (*harness, *fakeKernel) {
	t.Helper()
	kernel := &fakeKernel{links: twoLinks(), rulesKept: true}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIsWithASecondary()}}}, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: time.Hour, RuleRestoreInterval: 5 * time.Second})
	if plan := r.lastPlan; plan == nil || !slices.ContainsFunc(plan.Interfaces, func(i core.InterfacePlan) bool {
		return slices.Contains(i.Routes, ens6Default) && slices.Contains(i.Addresses, ens6Second)
	}) {
		t.Fatalf("the plan has no %v and %v for ens6: %+v", ens6Default, ens6Second, plan)
	}
	return h, kernel
}

// A route in an ENI table and a secondary address deleted by hand come back after the settle
// time, the route as its manager had installed it (metric, source, protocol from the event).
func TestADeletedRouteAndAddressComeBack(t *testing.T) {
	h, kernel := newRestoreHarness(t)
	asInstalled := ens6Default
	asInstalled.Metric, asInstalled.Source, asInstalled.Protocol, asInstalled.OnLink = 513, netip.MustParseAddr("10.0.1.10"), 16, true
	kernel.remove([]core.Route{ens6Default}, ens6Second)
	h.send(Trigger{Kind: RouteRemoved, Link: twoLinks()[1], Route: asInstalled})
	h.send(Trigger{Kind: AddressRemoved, Link: twoLinks()[1], Address: ens6Second})
	h.advance(restoreSettle - time.Millisecond)
	if routes, addrs := kernel.written(); len(routes)+len(addrs) != 0 {
		t.Fatalf("restored %v %v before the settle time (a manager re-adding them must win)", routes, addrs)
	}
	h.advance(time.Millisecond)
	routes, addrs := kernel.written()
	if !slices.Equal(routes, []core.Route{asInstalled}) {
		t.Errorf("routes restored %+v, want %+v (as installed)", routes, asInstalled)
	}
	if !slices.Equal(addrs, []netip.Prefix{ens6Second}) {
		t.Errorf("addresses restored %v, want %v", addrs, ens6Second)
	}
}

// Routes of tables that are not ours (main, the VPC CNI's, NetworkManager's) and addresses we do
// not own (DHCP's, a user's) are never restored: their removal does not even wake a restore.
func TestForeignRoutesAndAddressesAreNotRestored(t *testing.T) {
	h, kernel := newRestoreHarness(t)
	kernel.ensured = 0
	main := core.Route{Table: 254, Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.1.1")}
	cni := core.Route{Table: 2, Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.1.1")}
	h.send(Trigger{Kind: RouteRemoved, Link: twoLinks()[1], Route: main})
	h.send(Trigger{Kind: RouteRemoved, Link: twoLinks()[1], Route: cni})
	h.send(Trigger{Kind: AddressRemoved, Link: twoLinks()[1], Address: netip.MustParsePrefix("10.0.1.10/24")})
	h.advance(time.Second)
	if n := kernel.ensures(); n != 0 {
		t.Errorf("%d restore(s) for foreign routes and a DHCP address", n)
	}
}

// Routes a manager deletes and re-adds itself (a reconfiguration, a DHCP renewal) wake a restore
// that finds nothing missing: such restores must not use up the rate limit, or a real deletion
// right after would wait RuleRestoreInterval.
func TestChurnDoesNotStarveTheRestore(t *testing.T) {
	h, kernel := newRestoreHarness(t)
	for range 10 * restoreBurst {
		h.send(Trigger{Kind: RouteRemoved, Link: twoLinks()[1], Route: ens6Default})
		h.advance(restoreSettle) // the manager had put it back: nothing to restore
	}
	kernel.remove([]core.Route{ens6Subnet})
	h.send(Trigger{Kind: RouteRemoved, Link: twoLinks()[1], Route: ens6Subnet})
	h.advance(restoreSettle)
	if routes, _ := kernel.written(); !slices.Equal(routes, []core.Route{ens6Subnet}) {
		t.Errorf("restored %v after the churn, want %v at once", routes, ens6Subnet)
	}
}

// The kernel does not announce the IPv4 routes it flushes with their address: the full refresh
// compares what the plan wants with the kernel and puts back what is missing, without an event.
func TestAFullRefreshRestoresMissingRoutesAndAddresses(t *testing.T) {
	kernel := &fakeKernel{links: twoLinks(), rulesKept: true}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIsWithASecondary()}}}, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: 10 * time.Second, FullRefreshEvery: 2})
	kernel.remove([]core.Route{ens6Default, ens6Subnet}, ens6Second)
	h.advance(10 * time.Second) // not full
	if routes, addrs := kernel.written(); len(routes)+len(addrs) != 0 {
		t.Errorf("an ordinary refresh restored %v %v", routes, addrs)
	}
	h.advance(10 * time.Second) // full
	routes, addrs := kernel.written()
	if len(routes) != 2 || !slices.Equal(addrs, []netip.Prefix{ens6Second}) {
		t.Errorf("the full refresh restored routes %v and addresses %v, want ens6's two routes and %v", routes, addrs, ens6Second)
	}
}

// A restore never touches an interface whose link is gone (a detach in flight): its routes went
// with the link, and re-adding them would fail or, with a reused index, land on another link.
func TestRestoreSkipsInterfacesWhoseLinkIsGone(t *testing.T) {
	h, kernel := newRestoreHarness(t)
	kernel.remove([]core.Route{ens6Default}, ens6Second)
	kernel.links = kernel.links[:1]
	r := h.l.r
	restored, err := r.Restore(nil)
	if err != nil || len(restored.Routes)+len(restored.Addresses) != 0 {
		t.Errorf("Restore = %+v, %v; want nothing for the detached ens6", restored, err)
	}
}
