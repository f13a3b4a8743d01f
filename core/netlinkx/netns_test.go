package netlinkx

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ec2-net-utils/ec2-net-utils/internal/netnsx"
)

// needRoot skips tests that create network namespaces.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates throwaway network namespaces and links inside them")
	}
	if testing.Short() {
		t.Skip("-short: skipping a test that creates network namespaces")
	}
}

// testNetns is a throwaway named netns ("nlx-<random>", visible in ip netns list while the test
// runs) with a netlink handle opened inside it. Both are removed in t.Cleanup, also on failure.
type testNetns struct {
	name string
	ns   netns.NsHandle
	nl   *netlink.Handle
}

func newTestNetns(t *testing.T) *testNetns {
	t.Helper()
	needRoot(t)
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "nlx-" + hex.EncodeToString(b)

	ns, err := netnsx.NewNamed(name)
	tn := &testNetns{name: name, ns: ns}
	t.Cleanup(func() {
		if tn.nl != nil {
			tn.nl.Close()
		}
		if tn.ns.IsOpen() {
			tn.ns.Close()
		}
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	h, err := netlink.NewHandleAt(tn.ns)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	tn.nl = h
	return tn
}

// veth creates a veth pair with both ends inside the netns and returns the first end.
func (n *testNetns) veth(t *testing.T, name, peer, mac string) netlink.Link {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			t.Fatal(err)
		}
		attrs.HardwareAddr = hw
	}
	if err := n.nl.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer}); err != nil {
		t.Fatalf("in %s: ip link add %s type veth peer name %s: %v", n.name, name, peer, err)
	}
	l, err := n.nl.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (n *testNetns) up(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		l, err := n.nl.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.nl.LinkSetUp(l); err != nil {
			t.Fatalf("in %s: ip link set %s up: %v", n.name, name, err)
		}
	}
}
