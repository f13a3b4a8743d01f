package reconcile

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
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

// ens6 made dual-stack: 2600:1f14:1:2::10 is its DHCPv6 address (the manager's), ::11 a
// secondary /128 of ours, and fe80::1 the router its RAs announce.
var (
	ens6IPv6Subnet = netip.MustParsePrefix("2600:1f14:1:2::/64")
	ens6IPv6DHCP   = netip.MustParsePrefix("2600:1f14:1:2::10/128")
	ens6IPv6Second = netip.MustParsePrefix("2600:1f14:1:2::11/128")
	ens6RARouter   = netip.MustParseAddr("fe80::1")
	// The plan's IPv6 routes of ens6's table: the kernel has the default through the RA router.
	ens6IPv6Default     = core.Route{Table: 10001, Destination: netip.MustParsePrefix("::/0"), GatewayFromRA: true}
	ens6IPv6SubnetRoute = core.Route{Table: 10001, Destination: ens6IPv6Subnet}
)

func dualStackENIs() core.Instance {
	inst := twoENIsWithASecondary()
	inst.ENIs[1].IPv6s = []netip.Addr{ens6IPv6DHCP.Addr(), ens6IPv6Second.Addr()}
	inst.ENIs[1].SubnetIPv6 = []netip.Prefix{ens6IPv6Subnet}
	return inst
}

// newDualStackHarness is newRestoreHarness with ens6 dual-stack and its RA router known.
func newDualStackHarness(t *testing.T) (*harness, *fakeKernel) {
	t.Helper()
	ens6 := twoLinks()[1]
	kernel := &fakeKernel{links: twoLinks(), rulesKept: true, raRouters: map[int]netip.Addr{ens6.Index: ens6RARouter}}
	r := New(&fakeIMDS{answers: []answer{{inst: dualStackENIs()}}}, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: time.Hour, RuleRestoreInterval: 5 * time.Second})
	if plan := r.lastPlan; plan == nil || !slices.ContainsFunc(plan.Interfaces, func(i core.InterfacePlan) bool {
		return i.Name == ens6.Name && slices.Contains(i.Routes, ens6IPv6Default) && slices.Contains(i.Routes, ens6IPv6SubnetRoute) &&
			slices.Contains(i.Addresses, ens6IPv6Second) && !slices.Contains(i.Addresses, ens6IPv6DHCP)
	}) {
		t.Fatalf("the plan has no IPv6 default, subnet route and secondary for ens6 (or has its DHCPv6 address): %+v", plan)
	}
	return h, kernel
}

// The IPv6 side of a dual-stack ENI heals like the IPv4 side: the ENI table's default route
// through the RA-learned router, the IPv6 subnet route and a secondary /128 come back after the
// settle time, each route as its manager had installed it. The kernel reports the default with
// the router's link-local address as gateway while the plan has none (GatewayFromRA): the event
// must still be recognised as that route, or its attributes are lost.
func TestDeletedIPv6RoutesAndAddressOfADualStackENIComeBack(t *testing.T) {
	ens6 := twoLinks()[1]
	withAttrs := func(r core.Route, metric, proto int) core.Route {
		r.Metric, r.Protocol = metric, proto
		return r
	}
	// As the kernel has them: the default through the router, metric and protocol of the manager
	// (4 is proto static).
	kernelDefault := core.Route{Table: 10001, Destination: netip.MustParsePrefix("::/0"), Gateway: ens6RARouter, Metric: 1024, Protocol: 4}
	kernelSubnet := core.Route{Table: 10001, Destination: ens6IPv6Subnet, Metric: 256, Protocol: 4}
	for _, tc := range []struct {
		name       string
		route      *core.Route  // deleted from the kernel, as the event reports it
		addr       netip.Prefix // or deleted
		wantRoutes []core.Route // written by the restore
		wantAddrs  []netip.Prefix
	}{
		{name: "default via the RA router", route: &kernelDefault, wantRoutes: []core.Route{withAttrs(ens6IPv6Default, 1024, 4)}},
		{name: "subnet route", route: &kernelSubnet, wantRoutes: []core.Route{withAttrs(ens6IPv6SubnetRoute, 256, 4)}},
		{name: "secondary /128", addr: ens6IPv6Second, wantAddrs: []netip.Prefix{ens6IPv6Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, kernel := newDualStackHarness(t)
			if tc.route != nil {
				gone := *tc.route
				gone.Metric, gone.Protocol = 0, 0
				kernel.remove([]core.Route{gone})
				h.send(Trigger{Kind: RouteRemoved, Link: ens6, Route: *tc.route})
			} else {
				kernel.remove(nil, tc.addr)
				h.send(Trigger{Kind: AddressRemoved, Link: ens6, Address: tc.addr})
			}
			h.advance(restoreSettle - time.Millisecond)
			if routes, addrs := kernel.written(); len(routes)+len(addrs) != 0 {
				t.Fatalf("restored %v %v before the settle time (a manager re-adding them must win)", routes, addrs)
			}
			h.advance(time.Millisecond)
			routes, addrs := kernel.written()
			if !slices.Equal(routes, tc.wantRoutes) || !slices.Equal(addrs, tc.wantAddrs) {
				t.Errorf("restored routes %s and addresses %v, want %s and %v", withMetrics(routes), addrs, withMetrics(tc.wantRoutes), tc.wantAddrs)
			}
		})
	}
}

// IPv6 routes and addresses that are not the plan's are never put back: the kernel's RA default
// in main, a route in another agent's table, the DHCPv6 address and the link-local address do
// not even wake a restore; a route someone added to our table and deleted again wakes one (the
// table is ours) that leaves it deleted.
func TestForeignIPv6RoutesAndAddressesAreLeftAlone(t *testing.T) {
	h, kernel := newDualStackHarness(t)
	ens6 := twoLinks()[1]
	kernel.ensured = 0
	mainRA := core.Route{Table: 254, Destination: netip.MustParsePrefix("::/0"), Gateway: ens6RARouter, Protocol: 9}
	cni := core.Route{Table: 2, Destination: netip.MustParsePrefix("::/0"), Gateway: ens6RARouter}
	userInOurs := core.Route{Table: 10001, Destination: netip.MustParsePrefix("2001:db8::/32"), Gateway: ens6RARouter}
	linkLocal := netip.MustParsePrefix("fe80::6/64")
	// Gone from the kernel, so a restore that asked for them would find them missing and write them.
	kernel.remove([]core.Route{mainRA, cni, userInOurs}, ens6IPv6DHCP, linkLocal)

	h.send(Trigger{Kind: RouteRemoved, Link: ens6, Route: mainRA})
	h.send(Trigger{Kind: RouteRemoved, Link: ens6, Route: cni})
	h.send(Trigger{Kind: AddressRemoved, Link: ens6, Address: ens6IPv6DHCP})
	h.send(Trigger{Kind: AddressRemoved, Link: ens6, Address: linkLocal})
	h.advance(time.Second)
	if n := kernel.ensures(); n != 0 {
		t.Errorf("%d restore(s) for IPv6 routes of foreign tables and addresses we do not own", n)
	}
	h.send(Trigger{Kind: RouteRemoved, Link: ens6, Route: userInOurs})
	h.advance(time.Second)
	if n := kernel.ensures(); n != 1 {
		t.Errorf("%d restore(s) after a route of our table was deleted, want 1", n)
	}
	if routes, addrs := kernel.written(); len(routes)+len(addrs) != 0 {
		t.Errorf("restored %+v %v, none of them the plan's", routes, addrs)
	}
}

// While the link has no RA router (its RA default expired), the ENI table's IPv6 default cannot
// be put back: that is a wait, not a failure, and the other deleted routes still come back.
func TestAnIPv6DefaultWaitingForAnRADoesNotStopTheRestore(t *testing.T) {
	h, kernel := newDualStackHarness(t)
	ens6 := twoLinks()[1]
	delete(kernel.raRouters, ens6.Index)
	kernelDefault := core.Route{Table: 10001, Destination: netip.MustParsePrefix("::/0"), Gateway: ens6RARouter, Metric: 1024}
	kernel.remove([]core.Route{kernelDefault, ens6IPv6SubnetRoute})
	restored, err := h.l.r.Restore([]core.Route{kernelDefault, ens6IPv6SubnetRoute})
	if err != nil {
		t.Errorf("Restore: %v; waiting for an RA is not an error", err)
	}
	if !slices.Equal(restored.Routes, []core.Route{ens6IPv6SubnetRoute}) {
		t.Errorf("restored %+v, want the subnet route %+v", restored.Routes, ens6IPv6SubnetRoute)
	}
}

// withMetrics prints routes with the attributes a restore copies from the event, which
// Route.String leaves out.
func withMetrics(routes []core.Route) string {
	parts := make([]string, 0, len(routes))
	for _, r := range routes {
		parts = append(parts, fmt.Sprintf("[%s metric %d proto %d]", r, r.Metric, r.Protocol))
	}
	return strings.Join(parts, " ")
}
