package netlinkx

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func findLink(t *testing.T, links []core.Link, name string) core.Link {
	t.Helper()
	for _, l := range links {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("link %s not listed in %+v", name, links)
	return core.Link{}
}

func TestLinksReportVethDriverKindAndLowerCaseMAC(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	n.veth(t, "eni0", "vpc0", "02:AB:CD:00:00:01")
	x := New(n.nl, InNetns(n.ns))

	links, err := x.Links()
	if err != nil {
		t.Fatal(err)
	}
	eni := findLink(t, links, "eni0")
	if eni.Driver != "veth" || eni.Kind != "veth" || eni.MAC != "02:ab:cd:00:00:01" || eni.Index <= 0 {
		t.Errorf("eni0 = %+v, want driver veth, kind veth, mac 02:ab:cd:00:00:01", eni)
	}
	if peer := findLink(t, links, "vpc0"); peer.Driver != "veth" {
		t.Errorf("vpc0 driver = %q, want veth", peer.Driver)
	}
	if lo := findLink(t, links, "lo"); lo.Kind != "" {
		t.Errorf("lo kind = %q, want empty (no IFLA_INFO_KIND)", lo.Kind)
	}
}

// A handle from another netns used without InNetns must not borrow the driver of the link that
// has the same name in the process's netns (looked up there read-only; never modified).
func TestLinksWithoutNetnsOptionDoNotBorrowDriverOfSameNameInProcessNetns(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	hostLinks, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	host := driverLookup{fd: -1, sysRoot: "/sys"}
	if fd, err := socketIn(netns.None()); err == nil {
		host.fd = fd
		defer host.close()
	}
	var name string
	var hostIndex int
	for _, l := range hostLinks {
		if a := l.Attrs(); host.driver(a.Name, a.Index) != "" && a.Name != "lo" {
			name, hostIndex = a.Name, a.Index
			break
		}
	}
	if name == "" {
		t.Skip("the process's netns has no link with a driver to collide with")
	}
	// Same name in the test netns, at a different index (fillers move the index on if needed).
	for i := 0; ; i++ {
		l := n.veth(t, name, "peer"+strconv.Itoa(i), "")
		if l.Attrs().Index != hostIndex {
			break
		}
		if err := n.nl.LinkSetName(l, "filler"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}

	links, err := New(n.nl).Links()
	if err != nil {
		t.Fatal(err)
	}
	if l := findLink(t, links, name); l.Driver != "" {
		t.Errorf("%s in the test netns got driver %q, the one of %s in the process's netns", name, l.Driver, name)
	}
	links, err = New(n.nl, InNetns(n.ns)).Links()
	if err != nil {
		t.Fatal(err)
	}
	if l := findLink(t, links, name); l.Driver != "veth" {
		t.Errorf("with InNetns, %s driver = %q, want veth", name, l.Driver)
	}
}

func TestEnsureAltnamesAddsMissingNamesOnce(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index, MAC: l.Attrs().HardwareAddr.String()}
	names := []string{"eni0", "eni-0123456789abcdef0", "device-number-1.0"}

	added, err := x.EnsureAltnames(link, names)
	if err != nil {
		t.Fatal(err)
	}
	if want := names[1:]; !slices.Equal(added, want) {
		t.Errorf("first call added %q, want %q", added, want)
	}
	again, err := x.EnsureAltnames(link, names)
	if err != nil || len(again) != 0 {
		t.Errorf("second call added %q (err %v), want nothing", again, err)
	}
	got, err := n.nl.LinkByName("device-number-1.0") // the kernel resolves altnames
	if err != nil || got.Attrs().Index != link.Index {
		t.Errorf("ip link show device-number-1.0: %v, %v", got, err)
	}
}

func TestEnsureAltnamesNamesTheLinkHoldingATakenName(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "")
	x := New(n.nl, InNetns(n.ns))
	peer, err := n.nl.LinkByName("vpc0")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.nl.LinkAddAltName(peer, "device-number-1.0"); err != nil {
		t.Fatal(err)
	}

	added, err := x.EnsureAltnames(core.Link{Name: "eni0", Index: l.Attrs().Index}, []string{"device-number-1.0", "eni-1"})
	if err == nil || !strings.Contains(err.Error(), "already used by vpc0") {
		t.Errorf("error = %v, want one naming vpc0", err)
	}
	if !slices.Equal(added, []string{"eni-1"}) {
		t.Errorf("added %q, want the free name still added", added)
	}
}

func TestLinkWithReusedIndexButOtherMACIsRefused(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "02:00:00:00:00:01")
	x := New(n.nl, InNetns(n.ns))
	_, err := x.EnsureAltnames(core.Link{Name: "eni0", Index: l.Attrs().Index, MAC: "02:00:00:00:00:99"}, []string{"eni-1"})
	if err == nil {
		t.Fatal("altname added to a link whose MAC is not the ENI's")
	}
}

// The daemon lists links on every refresh; drivers are cached per (index, name, MAC), so a
// renamed link is looked up again and keeps reporting its driver.
func TestLinksCacheDriversAndLookUpRenamedLinksAgain(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	n.veth(t, "eni0", "vpc0", "02:AB:CD:00:00:02")
	x := New(n.nl, InNetns(n.ns))
	for range 2 {
		links, err := x.Links()
		if err != nil {
			t.Fatal(err)
		}
		if d := findLink(t, links, "eni0").Driver; d != "veth" {
			t.Fatalf("eni0 driver %q, want veth", d)
		}
	}
	l, err := n.nl.LinkByName("eni0")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.nl.LinkSetName(l, "ens9"); err != nil {
		t.Fatal(err)
	}
	links, err := x.Links()
	if err != nil {
		t.Fatal(err)
	}
	if d := findLink(t, links, "ens9").Driver; d != "veth" {
		t.Errorf("renamed link ens9 driver %q, want veth", d)
	}
	if len(x.drivers) != len(links)-1 { // lo has no driver and is not cached
		t.Errorf("cache holds %d entries for %d links: %v", len(x.drivers), len(links), x.drivers)
	}
}
