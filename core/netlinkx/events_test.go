package netlinkx

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// nextNonAddressEvent skips address and route events (link-local churn, DAD, routes going with
// their link) and fails on a Resync, which nothing in these tests should cause.
func nextNonAddressEvent(t *testing.T, events <-chan Event) Event {
	t.Helper()
	for {
		ev := nextEvent(t, events, 10*time.Second)
		switch ev.Kind {
		case AddressChanged, AddressRemoved, RouteRemoved:
			continue
		case Resync:
			t.Fatalf("unexpected resync: %v", ev.Err)
		}
		return ev
	}
}

// The life of a hot-plugged ENI as the agent sees it: attached (moved in from the "pool"
// netns), renamed by udev, a rule of ours deleted by someone, detached.
func TestSubscribeSeesAnENIAttachedRenamedAndDetachedAndARuleDeleted(t *testing.T) {
	t.Parallel()
	pool := newTestNetns(t)
	inst := newTestNetns(t)
	eni := pool.veth(t, "eth1", "vpc1", "02:00:00:00:01:01")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := Subscribe(ctx, inst.ns)
	if err != nil {
		t.Fatal(err)
	}

	// Attach: ip -n pool link set eth1 netns inst
	if err := pool.nl.LinkSetNsFd(eni, int(inst.ns)); err != nil {
		t.Fatal(err)
	}
	ev := nextNonAddressEvent(t, events)
	if ev.Kind != LinkAdded || ev.Link.Name != "eth1" || ev.Link.MAC != "02:00:00:00:01:01" || ev.Link.Driver != "veth" {
		t.Fatalf("after attach got %v %+v, want link-added eth1 with driver veth", ev.Kind, ev.Link)
	}
	index := ev.Link.Index

	// Up is a change of a known link, not a new one; then udev renames it.
	l, err := inst.nl.LinkByIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.nl.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	if err := inst.nl.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	if err := inst.nl.LinkSetName(l, "ens6"); err != nil {
		t.Fatal(err)
	}
	ev = nextNonAddressEvent(t, events)
	if ev.Kind != LinkRenamed || ev.Link.Name != "ens6" || ev.OldName != "eth1" || ev.Link.Index != index || ev.Link.Driver != "veth" {
		t.Fatalf("after rename got %v %+v (old %q), want link-renamed eth1 -> ens6", ev.Kind, ev.Link, ev.OldName)
	}

	// A manager deletes one of our rules: ip rule del from 2600:1f14::7 lookup 10001 priority 10001
	x := New(inst.nl, InNetns(inst.ns))
	ours := core.Rule{Family: core.IPv6, From: netip.MustParsePrefix("2600:1f14::7/128"), Table: 10001, Priority: 10001}
	if _, err := x.EnsureRules([]core.Rule{ours}); err != nil {
		t.Fatal(err)
	}
	nr, _ := toNetlinkRule(ours)
	if err := inst.nl.RuleDel(nr); err != nil {
		t.Fatal(err)
	}
	ev = nextNonAddressEvent(t, events)
	if ev.Kind != RuleRemoved {
		t.Fatalf("after rule deletion got %v %+v, want rule-removed", ev.Kind, ev)
	}
	if diff := cmp.Diff(ours, ev.Rule, netipEqual); diff != "" {
		t.Errorf("removed rule (-want +got):\n%s", diff)
	}

	// Detach.
	if err := inst.nl.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	ev = nextNonAddressEvent(t, events)
	if ev.Kind != LinkRemoved || ev.Link.Index != index || ev.Link.Name != "ens6" {
		t.Fatalf("after detach got %v %+v, want link-removed ens6", ev.Kind, ev.Link)
	}

	cancel()
	for range events { // closed once ctx ends
	}
}

func TestSubscribeSeesIPv4RuleDeletionAndLinkMovedOut(t *testing.T) {
	t.Parallel()
	pool := newTestNetns(t)
	inst := newTestNetns(t)
	inst.veth(t, "eth1", "vpc1", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := Subscribe(ctx, inst.ns)
	if err != nil {
		t.Fatal(err)
	}
	x := New(inst.nl, InNetns(inst.ns))
	ours := core.Rule{Family: core.IPv4, From: netip.MustParsePrefix("10.0.1.7/32"), Table: 10001, Priority: 10001}
	if _, err := x.EnsureRules([]core.Rule{ours}); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteRules([]core.Rule{ours}); err != nil {
		t.Fatal(err)
	}
	if ev := nextNonAddressEvent(t, events); ev.Kind != RuleRemoved || !cmp.Equal(ours, ev.Rule, netipEqual) {
		t.Fatalf("got %v %+v, want rule-removed %+v", ev.Kind, ev.Rule, ours)
	}

	// Moving a link out of the netns is a detach too: ip -n inst link set eth1 netns pool
	l, err := inst.nl.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.nl.LinkSetNsFd(l, int(pool.ns)); err != nil {
		t.Fatal(err)
	}
	if ev := nextNonAddressEvent(t, events); ev.Kind != LinkRemoved || ev.Link.Name != "eth1" {
		t.Fatalf("got %v %+v, want link-removed eth1", ev.Kind, ev.Link)
	}
}

// When the receiver falls behind and the kernel drops messages, the receiver is told to re-read
// everything, and events keep flowing afterwards.
func TestSubscribeReportsAnOverflowAsResyncAndKeepsGoing(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := subscribe(ctx, n.ns, 1) // the kernel rounds up to its minimum, a few messages
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads while thousands of rules are added and deleted.
	for i := range 2000 {
		r := netlink.NewRule()
		r.Family, r.Priority, r.Table = netlink.FAMILY_V4, 20000+i, 20000+i
		if err := n.nl.RuleAdd(r); err != nil {
			t.Fatal(err)
		}
		if err := n.nl.RuleDel(r); err != nil {
			t.Fatal(err)
		}
	}
	for {
		ev := nextEvent(t, events, 10*time.Second)
		if ev.Kind == Resync {
			if !errors.Is(ev.Err, unix.ENOBUFS) {
				t.Errorf("resync error = %v, want ENOBUFS", ev.Err)
			}
			break
		}
	}

	// Still alive, and nothing is lost silently: a deletion made after the last Resync is
	// reported. (The flood may have queued several Resyncs; each one means "anything before may
	// be lost", so a fresh marker rule is deleted after each.) Before drain() existed, the
	// kernel's once-only ENOBUFS let a marker vanish here with no Resync after it.
	marker := 30000
	deleteMarker := func() {
		marker++
		r := netlink.NewRule()
		r.Family, r.Priority, r.Table = netlink.FAMILY_V4, marker, marker
		if err := n.nl.RuleAdd(r); err != nil {
			t.Fatal(err)
		}
		if err := n.nl.RuleDel(r); err != nil {
			t.Fatal(err)
		}
	}
	deleteMarker()
	for {
		ev := nextEvent(t, events, 10*time.Second)
		switch {
		case ev.Kind == RuleRemoved && ev.Rule.Priority == marker:
			return
		case ev.Kind == Resync:
			deleteMarker()
		}
	}
}

func TestSubscribeClosesTheChannelWhenContextEnds(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	events, err := Subscribe(ctx, n.ns)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("channel still open after cancel")
		}
	}
}

func TestParseAddrPrefersTheLocalAddress(t *testing.T) {
	t.Parallel()
	attr := func(typ uint16, v ...byte) []byte {
		b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(v)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		return append(b, v...)
	}
	// ifaddrmsg{AF_INET, /32, flags 0, scope, index 7}, IFA_ADDRESS (a peer), IFA_LOCAL (ours)
	b := []byte{unix.AF_INET, 32, 0, unix.RT_SCOPE_UNIVERSE}
	b = binary.NativeEndian.AppendUint32(b, 7)
	b = append(b, attr(unix.IFA_ADDRESS, 10, 9, 9, 9)...)
	b = append(b, attr(unix.IFA_LOCAL, 10, 0, 1, 7)...)

	index, p, ok := parseAddr(b)
	if !ok || index != 7 || p != netip.MustParsePrefix("10.0.1.7/32") {
		t.Errorf("parseAddr = %d %v %v, want 7 10.0.1.7/32", index, p, ok)
	}
	b[3] = unix.RT_SCOPE_LINK
	if _, _, ok := parseAddr(b); ok {
		t.Error("link-scope address reported")
	}
}

// A router advertisement that arrives late, a router that changes and one that goes away each
// reach the agent once; a manager re-adding the same route at every RA, routes in other tables
// and default routes of other protocols do not.
func TestSubscribeReportsRAGatewayChanges(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	n.veth(t, "eni0", "vpc0", "02:00:00:00:01:01")
	n.up(t, "eni0", "vpc0")
	l, err := n.nl.LinkByName("eni0")
	if err != nil {
		t.Fatal(err)
	}
	index := l.Attrs().Index
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := Subscribe(ctx, n.ns)
	if err != nil {
		t.Fatal(err)
	}
	route := func(gw string, table int, proto netlink.RouteProtocol) *netlink.Route {
		return &netlink.Route{LinkIndex: index, Dst: mustIPNet("::/0"), Gw: net.ParseIP(gw), Table: table, Protocol: proto}
	}
	step := func(what string, do func(*netlink.Route) error, r *netlink.Route, want netip.Addr) {
		t.Helper()
		if err := do(r); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !want.IsValid() {
			return
		}
		ev := nextNonAddressEvent(t, events)
		if ev.Kind != RouterChanged || ev.Link.Index != index || ev.Link.Name != "eni0" || ev.Router != want {
			t.Fatalf("%s: got %v %+v router %v, want router-changed on eni0 with router %v", what, ev.Kind, ev.Link, ev.Router, want)
		}
	}
	none := netip.Addr{}
	step("static default in main", n.nl.RouteReplace, route("fe80::9", unix.RT_TABLE_MAIN, unix.RTPROT_STATIC), none)
	step("RA default in an ENI table", n.nl.RouteReplace, route("fe80::9", 10001, unix.RTPROT_RA), none)
	step("late RA", n.nl.RouteReplace, route("fe80::1", unix.RT_TABLE_MAIN, unix.RTPROT_RA), netip.MustParseAddr("fe80::1"))
	step("same RA again", n.nl.RouteReplace, route("fe80::1", unix.RT_TABLE_MAIN, unix.RTPROT_RA), none)
	if err := n.nl.RouteDel(route("fe80::1", unix.RT_TABLE_MAIN, unix.RTPROT_RA)); err != nil {
		t.Fatal(err)
	}
	ev := nextNonAddressEvent(t, events)
	if ev.Kind != RouterChanged || ev.Router.IsValid() {
		t.Fatalf("after the route went: got %v router %v, want router-changed without a router", ev.Kind, ev.Router)
	}
	step("new router", n.nl.RouteReplace, route("fe80::2", unix.RT_TABLE_MAIN, unix.RTPROT_RA), netip.MustParseAddr("fe80::2"))
}

// A route deleted from one of our tables is reported with the attributes it had, so a restore can
// put it back as it was; routes of main and of foreign tables are not reported. A secondary
// address deleted by hand is reported as removed.
func TestSubscribeReportsRoutesRemovedFromOurTablesAndAddressesRemoved(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	if err := n.nl.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index}
	if _, err := x.EnsureAddresses(link, prefixes("10.0.1.7/24", "10.0.1.8/32")); err != nil {
		t.Fatal(err)
	}
	subnet := netip.MustParsePrefix("10.0.1.0/24")
	ours := core.Route{Table: 10001, Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.1.1"),
		Metric: 513, Source: netip.MustParseAddr("10.0.1.7"), Protocol: unix.RTPROT_DHCP, OnLink: true}
	routes := []core.Route{
		{Table: 10001, Destination: subnet},
		ours,
		{Table: 30200, Destination: netip.MustParsePrefix("192.0.2.0/24"), Gateway: netip.MustParseAddr("10.0.1.1")},
		{Table: unix.RT_TABLE_MAIN, Destination: netip.MustParsePrefix("198.51.100.0/24"), Gateway: netip.MustParseAddr("10.0.1.1")},
	}
	if _, err := x.EnsureRoutes(link, routes); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := Subscribe(ctx, n.ns)
	if err != nil {
		t.Fatal(err)
	}
	// ip route del 192.0.2.0/24 table 30200; ip route del 198.51.100.0/24; ip route del default table 10001
	for _, r := range []core.Route{routes[2], routes[3], ours} {
		nr := &netlink.Route{LinkIndex: link.Index, Dst: ipNet(r.Destination), Table: r.Table, Gw: net.IP(r.Gateway.AsSlice())}
		if err := n.nl.RouteDel(nr); err != nil {
			t.Fatalf("delete %v: %v", r, err)
		}
	}
	ev := nextEventOf(t, events, RouteRemoved)
	if ev.Link.Index != link.Index || ev.Link.Name != "eni0" {
		t.Errorf("route-removed on %+v, want eni0", ev.Link)
	}
	if diff := cmp.Diff(ours, ev.Route, netipEqual); diff != "" {
		t.Errorf("removed route (-want +got), foreign tables must not be reported:\n%s", diff)
	}
	// ip addr del 10.0.1.8/32 dev eni0
	if _, err := x.DeleteAddresses(link, prefixes("10.0.1.8/32")); err != nil {
		t.Fatal(err)
	}
	ev = nextEventOf(t, events, AddressRemoved)
	if ev.Link.Index != link.Index || ev.Address != netip.MustParsePrefix("10.0.1.8/32") {
		t.Errorf("address-removed %v on %+v, want 10.0.1.8/32 on eni0", ev.Address, ev.Link)
	}
}

// nextEventOf returns the next event of this kind, skipping address additions and failing on
// anything else.
func nextEventOf(t *testing.T, events <-chan Event, kind EventKind) Event {
	t.Helper()
	for {
		ev := nextEvent(t, events, 10*time.Second)
		switch ev.Kind {
		case kind:
			return ev
		case AddressChanged:
			continue
		}
		t.Fatalf("got %v %+v, want %v", ev.Kind, ev, kind)
	}
}

func TestParseRouteKeepsOnlyUnicastRoutesWithALink(t *testing.T) {
	if _, _, ok := parseRoute([]byte{1, 2}); ok {
		t.Error("a truncated message parsed")
	}
	msg := nl.NewRtMsg()
	msg.Family = unix.AF_INET
	msg.Table = 200
	msg.Type = unix.RTN_BLACKHOLE
	if _, _, ok := parseRoute(msg.Serialize()); ok {
		t.Error("a blackhole route parsed")
	}
	msg.Type = unix.RTN_UNICAST
	if _, _, ok := parseRoute(msg.Serialize()); ok {
		t.Error("a route without an output link parsed")
	}
}
