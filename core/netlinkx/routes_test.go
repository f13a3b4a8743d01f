package netlinkx

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

var sortRoutes = cmpopts.SortSlices(func(a, b core.Route) bool { return a.Destination.String() < b.Destination.String() })

func TestEnsureRoutesFillsAnENITableOnceAndWaitsForTheRARouter(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	n.up(t, "eni0", "vpc0")
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index}
	// No address on the link, so main has no route to 10.0.1.1: the gateway is reachable only
	// through the table's own subnet route, which is listed after it on purpose.
	want := []core.Route{
		{Table: 10001, Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.1.1")},
		{Table: 10001, Destination: netip.MustParsePrefix("10.0.1.0/24")},
		{Table: 10001, Destination: netip.MustParsePrefix("2600:1f14:1:2::/64")},
		{Table: 10001, Destination: netip.MustParsePrefix("::/0"), GatewayFromRA: true},
	}

	replaced, err := x.EnsureRoutes(link, want)
	if !errors.Is(err, ErrNoRARouter) {
		t.Errorf("err = %v, want ErrNoRARouter before any RA", err)
	}
	if diff := cmp.Diff(want[:3], replaced, sortRoutes, netipEqual); diff != "" {
		t.Errorf("first call wrote (-want +got):\n%s", diff)
	}

	// The kernel learns the router from an RA: "default via fe80::1 dev eni0 proto ra" in main.
	ra := &netlink.Route{LinkIndex: link.Index, Dst: mustIPNet("::/0"), Gw: net.ParseIP("fe80::1"), Protocol: unix.RTPROT_RA}
	if err := n.nl.RouteAdd(ra); err != nil {
		t.Fatalf("add RA default route: %v", err)
	}
	replaced, err = x.EnsureRoutes(link, want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[3:], replaced, netipEqual); diff != "" {
		t.Errorf("second call wrote (-want +got):\n%s", diff)
	}
	if replaced, err = x.EnsureRoutes(link, want); err != nil || len(replaced) != 0 {
		t.Errorf("third call wrote %v (err %v), want nothing", replaced, err)
	}

	got, err := x.RoutesInTable(10001)
	if err != nil {
		t.Fatal(err)
	}
	wantTable := []core.Route{
		want[0], want[1], want[2],
		{Table: 10001, Destination: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("fe80::1")},
	}
	if diff := cmp.Diff(wantTable, got, sortRoutes, netipEqual, kernelAttrs); diff != "" {
		t.Errorf("table 10001 (-want +got):\n%s", diff)
	}
}

// kernelAttrs leaves out what the kernel adds to a route (its default metric, the protocol).
var kernelAttrs = cmpopts.IgnoreFields(core.Route{}, "Metric", "Source", "Protocol", "OnLink")

// A restore puts back the route its manager installed, not a look-alike: same metric, preferred
// source, protocol and onlink flag (networkd's "src <lease> proto dhcp", NetworkManager's route metric), so
// the manager adding it again finds it in place instead of adding a second one.
func TestEnsureRoutesKeepsMetricSourceAndProtocol(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index}
	if _, err := x.EnsureAddresses(link, prefixes("10.0.1.7/24")); err != nil {
		t.Fatal(err)
	}
	if err := n.nl.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	want := []core.Route{
		{Table: 10001, Destination: netip.MustParsePrefix("10.0.1.0/24"), Metric: 513, Protocol: unix.RTPROT_STATIC},
		{Table: 10001, Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.1.1"),
			Metric: 513, Source: netip.MustParseAddr("10.0.1.7"), Protocol: unix.RTPROT_DHCP, OnLink: true},
	}
	if _, err := x.EnsureRoutes(link, want); err != nil {
		t.Fatal(err)
	}
	got, err := x.RoutesInTable(10001)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, sortRoutes, netipEqual); diff != "" {
		t.Errorf("table 10001 (-want +got):\n%s", diff)
	}
}

func TestDeleteRoutesInTableEmptiesOnlyThatTable(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	n.up(t, "eni0", "vpc0")
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index}
	for _, table := range []int{10001, 10002} {
		if _, err := x.EnsureRoutes(link, []core.Route{
			{Table: table, Destination: netip.MustParsePrefix("10.0.1.0/24")},
			{Table: table, Destination: netip.MustParsePrefix("2600:1f14:1:2::/64")},
		}); err != nil {
			t.Fatal(err)
		}
	}

	deleted, err := x.DeleteRoutesInTable(10001)
	if err != nil || deleted != 2 {
		t.Errorf("DeleteRoutesInTable(10001) = %d, %v; want 2 routes", deleted, err)
	}
	if got, _ := x.RoutesInTable(10001); len(got) != 0 {
		t.Errorf("table 10001 still has %v", got)
	}
	if got, _ := x.RoutesInTable(10002); len(got) != 2 {
		t.Errorf("table 10002 has %v, want its 2 routes untouched", got)
	}
	for _, table := range []int{0, unix.RT_TABLE_MAIN, unix.RT_TABLE_LOCAL, unix.RT_TABLE_DEFAULT} {
		if _, err := x.DeleteRoutesInTable(table); err == nil {
			t.Errorf("DeleteRoutesInTable(%d) accepted", table)
		}
	}
	main, err := n.nl.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil || len(main) == 0 {
		t.Errorf("main table lost its routes: %v %v", main, err)
	}
}

func TestSplitRAWaitKeepsRealFailures(t *testing.T) {
	wait := fmt.Errorf("netlinkx: route default via <router advertisement> dev ens6 table 10001: %w",
		fmt.Errorf("ens6: %w", ErrNoRARouter))
	real := errors.New("netlinkx: replace route default via 10.0.1.1 dev ens6 table 10001: network unreachable")
	for _, tc := range []struct {
		name     string
		err      error
		waits    bool
		wantReal bool
	}{
		{"nothing", nil, false, false},
		{"wait alone", errors.Join(wait), true, false},
		{"real alone", errors.Join(real), false, true},
		{"both", errors.Join(wait, real), true, true},
		{"unjoined wait", wait, true, false},
	} {
		waits, rest := SplitRAWait(tc.err)
		if waits != tc.waits || (rest != nil) != tc.wantReal || (tc.wantReal && !errors.Is(rest, real)) {
			t.Errorf("%s: SplitRAWait = %v, %v", tc.name, waits, rest)
		}
		if errors.Is(rest, ErrNoRARouter) {
			t.Errorf("%s: the rest still holds the wait: %v", tc.name, rest)
		}
	}
}
