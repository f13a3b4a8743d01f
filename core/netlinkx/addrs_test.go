package netlinkx

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

var sortPrefixes = cmpopts.SortSlices(func(a, b netip.Prefix) bool { return a.String() < b.String() })

func TestSyncPrefixesAddsBeforeItDeletesAndOnlyDeletesOwned(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		current, want, owned []netip.Prefix
		failAdd              string
		calls                []string
		wantErr              bool
	}{
		{
			name:    "replaced secondary: new one first, then the old one",
			current: prefixes("10.0.1.7/24", "10.0.1.19/32"),
			want:    prefixes("10.0.1.20/32"),
			owned:   prefixes("10.0.1.19/32"),
			calls:   []string{"add 10.0.1.20/32", "del 10.0.1.19/32"},
		},
		{
			name:    "DHCP and user addresses are never owned, so never deleted",
			current: prefixes("10.0.1.7/24", "10.0.1.50/32", "10.0.1.8/32"),
			want:    nil,
			owned:   prefixes("10.0.1.8/32"),
			calls:   []string{"del 10.0.1.8/32"},
		},
		{
			name:    "owning 10.0.1.7/32 does not own the DHCP 10.0.1.7/24",
			current: prefixes("10.0.1.7/24"),
			owned:   prefixes("10.0.1.7/32"),
		},
		{
			name:    "nothing to do",
			current: prefixes("10.0.1.7/24", "10.0.1.8/32", "2600:1f14::8/128"),
			want:    prefixes("10.0.1.8/32", "2600:1f14::8/128"),
			owned:   prefixes("10.0.1.8/32", "2600:1f14::8/128"),
		},
		{
			name:    "a failed add is tried once and does not keep an unwanted address",
			current: prefixes("10.0.1.19/32"),
			want:    prefixes("10.0.1.20/32", "10.0.1.21/32", "10.0.1.20/32"),
			owned:   prefixes("10.0.1.19/32"),
			failAdd: "10.0.1.20/32",
			calls:   []string{"add 10.0.1.20/32", "add 10.0.1.21/32", "del 10.0.1.19/32"},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			add := func(p netip.Prefix) error {
				calls = append(calls, "add "+p.String())
				if p.String() == tt.failAdd {
					return errors.New("boom")
				}
				return nil
			}
			del := func(p netip.Prefix) error {
				calls = append(calls, "del "+p.String())
				return nil
			}
			_, _, err := syncPrefixes(tt.current, tt.want, tt.owned, add, del)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error: %v", err, tt.wantErr)
			}
			if !slices.Equal(calls, tt.calls) {
				t.Errorf("calls = %q, want %q", calls, tt.calls)
			}
		})
	}
}

func TestSyncAddressesOnALinkWithADHCPAddress(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	n.up(t, "eni0", "vpc0")
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index, MAC: l.Attrs().HardwareAddr.String()}
	// As DHCP and a user left them; the user's /32 is not ours.
	for _, p := range prefixes("10.0.1.7/24", "10.0.1.50/32", "10.0.1.8/32", "10.0.1.9/32") {
		if err := n.nl.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
			t.Fatal(err)
		}
	}
	want := prefixes("10.0.1.9/32", "10.0.1.10/32", "2600:1f14::10/128")
	owned := prefixes("10.0.1.7/32", "10.0.1.8/32", "10.0.1.9/32") // last refresh's secondaries

	added, removed, err := x.SyncAddresses(link, want, owned)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(prefixes("10.0.1.10/32", "2600:1f14::10/128"), added, netipEqual); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(prefixes("10.0.1.8/32"), removed, netipEqual); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	got, err := x.Addresses(link)
	if err != nil {
		t.Fatal(err)
	}
	wantNow := prefixes("10.0.1.7/24", "10.0.1.50/32", "10.0.1.9/32", "10.0.1.10/32", "2600:1f14::10/128")
	if diff := cmp.Diff(wantNow, got, sortPrefixes, netipEqual); diff != "" {
		t.Errorf("addresses on eni0 (-want +got):\n%s", diff)
	}

	added, removed, err = x.SyncAddresses(link, want, owned)
	if err != nil || len(added)+len(removed) != 0 {
		t.Errorf("second sync: added %v removed %v err %v, want no change", added, removed, err)
	}

	// Secondaries carry noprefixroute, so the kernel added no /128 route of its own.
	addrs, err := n.nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, _ := prefixOf(a.IPNet); slices.Contains(added, p) && a.Flags&unix.IFA_F_NOPREFIXROUTE == 0 {
			t.Errorf("%s added without noprefixroute (flags %#x)", p, a.Flags)
		}
	}
	routes, err := n.nl.RouteList(l, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if ones, _ := r.Dst.Mask.Size(); ones == 128 && r.Dst.IP.IsGlobalUnicast() {
			t.Errorf("kernel route for a secondary: %s", r)
		}
	}
}

// What a watcher of the link sees proves the order: the new address appears before the stale
// one goes, so the link is never without a secondary.
func TestSyncAddressesAddsTheNewAddressBeforeDeletingTheOldOne(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index}
	if _, err := x.EnsureAddresses(link, prefixes("10.0.1.19/32")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := Subscribe(ctx, n.ns)
	if err != nil {
		t.Fatal(err)
	}

	if _, _, err := x.SyncAddresses(link, prefixes("10.0.1.20/32"), prefixes("10.0.1.19/32")); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 2 {
		ev := nextEvent(t, events, 10*time.Second)
		if (ev.Kind != AddressChanged && ev.Kind != AddressRemoved) || ev.Link.Index != link.Index {
			t.Fatalf("unexpected event %+v", ev)
		}
		seen = append(seen, ev.Kind.String()+" "+ev.Address.String())
	}
	if want := []string{"address-changed 10.0.1.20/32", "address-removed 10.0.1.19/32"}; !slices.Equal(seen, want) {
		t.Errorf("address events %q, want %q (add before delete)", seen, want)
	}
}

func TestDeleteAddressesToleratesAlreadyGoneAddresses(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index}
	if _, err := x.EnsureAddresses(link, prefixes("10.0.1.19/32", "2600:1f14::19/128")); err != nil {
		t.Fatal(err)
	}
	removed, err := x.DeleteAddresses(link, prefixes("10.0.1.19/32", "10.0.1.99/32", "2600:1f14::19/128"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(prefixes("10.0.1.19/32", "2600:1f14::19/128"), removed, netipEqual); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if got, _ := x.Addresses(link); len(got) != 0 {
		t.Errorf("addresses left: %v", got)
	}
}

// nextEvent returns the next event or fails the test once the deadline passes (a hang guard,
// not a timing assertion).
func nextEvent(t *testing.T, events <-chan Event, within time.Duration) Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(within):
		t.Fatal("no event")
	}
	return Event{}
}

// EC2 never hands one IPv6 address to two ENIs, so duplicate address detection only delays the
// addresses the agent adds: tentative, they cannot be a source for one to two seconds after an
// attach or a restore (amazon-ec2-net-utils turns DAD off in its networkd files for the same
// reason). Here the link does DAD (accept_dad is 1 in a new namespace) and has a carrier.
func TestSyncAddressesMakesIPv6AddressesUsableAtOnce(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	n.up(t, "eni0", "vpc0")
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index}
	want := prefixes("fd00:99:0:1::20/128", "10.0.1.20/32")
	if _, _, err := x.SyncAddresses(link, want, nil); err != nil {
		t.Fatal(err)
	}
	as, err := n.nl.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range as {
		if a.IP.String() != "fd00:99:0:1::20" {
			continue
		}
		found = true
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("fd00:99:0:1::20 is tentative (flags %#x): unusable as a source until DAD ends", a.Flags)
		}
	}
	if !found {
		t.Errorf("fd00:99:0:1::20 not on eni0: %v", as)
	}
}
