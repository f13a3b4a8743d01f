// Package netlinkx is the agent's view of the kernel's network state: links (with driver and
// altnames), source rules, addresses and ENI-table routes, plus a stream of the events that
// should wake the reconcile loop. It talks netlink directly (vishvananda/netlink) and never shells
// out to ip; every method names the ip command it is equivalent to.
//
// Two properties the callers rely on:
//   - Dumps are complete or an error. A dump interrupted by a concurrent change
//     (NLM_F_DUMP_INTR) is retried, never accepted partially, because callers diff what they read
//     against a plan and would otherwise "add" or "delete" things that are really there.
//   - Nothing is deleted that the caller did not name. Ensure* only adds; Delete*/Sync* remove
//     exactly the rules, addresses or table contents they are told are owned.
package netlinkx

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// dumpAttempts bounds the retries of an interrupted dump; the same number as containernetworking's
// netlinksafe and the VPC CNI. Interruptions come from concurrent changes, so a handful of
// immediate retries is enough unless something rewrites the table in a loop.
const dumpAttempts = 5

// Handle runs netlink requests in the network namespace its netlink handle was opened in.
// It holds no state besides the handle, so it is safe for concurrent use as far as the
// underlying *netlink.Handle is.
type Handle struct {
	nl *netlink.Handle
	// ns is where ethtool ioctls run; netns.None() means the caller's (current) netns.
	ns netns.NsHandle

	// drivers caches each link's driver: the daemon lists links on every refresh, and a link
	// (same index, name and MAC) never changes driver. Keyed on all three, so a renamed link or an
	// index reused by another link is looked up again.
	mu      sync.Mutex
	drivers map[driverKey]string
}

type driverKey struct {
	index     int
	name, mac string
}

// Option configures a Handle.
type Option func(*Handle)

// InNetns says which network namespace the netlink handle belongs to. Netlink requests travel
// over the handle's socket and need nothing else, but the driver lookup in Links is an ethtool
// ioctl on an AF_INET socket that must be opened inside the same netns. Pass it whenever the
// handle was opened with netlink.NewHandleAt in a netns other than the process's own (tests, the
// lab); without it drivers of such links come back empty rather than wrong (see Links). The
// caller keeps ns open for the Handle's lifetime.
func InNetns(ns netns.NsHandle) Option {
	return func(h *Handle) { h.ns = ns }
}

// New wraps an open netlink handle. The caller owns h and closes it.
func New(h *netlink.Handle, opts ...Option) *Handle {
	x := &Handle{nl: h, ns: netns.None()}
	for _, o := range opts {
		o(x)
	}
	return x
}

// retryDump runs a netlink dump until it completes without NLM_F_DUMP_INTR. Since netlink v1.2.1
// an interrupted dump returns partial results together with ErrDumpInterrupted; those results are
// dropped, never used.
func retryDump[T any](what string, dump func() (T, error)) (T, error) {
	var zero T
	var err error
	for range dumpAttempts {
		var v T
		v, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			if err != nil {
				return zero, fmt.Errorf("netlinkx: %s: %w", what, err)
			}
			return v, nil
		}
	}
	return zero, fmt.Errorf("netlinkx: %s: still interrupted after %d attempts: %w", what, dumpAttempts, err)
}

// familyOf returns netlink's family constant for a prefix.
func familyOf(p netip.Prefix) int {
	if p.Addr().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// ipNet converts a prefix to netlink's form, keeping the host bits (an address with its prefix
// length, as in "ip addr add 10.0.0.5/24").
func ipNet(p netip.Prefix) *net.IPNet {
	a := p.Addr().Unmap()
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// prefixOf converts netlink's form back, unmapping IPv4 so that prefixes compare equal to the
// ones the planner builds. ok is false for nil or malformed values.
func prefixOf(n *net.IPNet) (p netip.Prefix, ok bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 0 || (bits != a.BitLen() && !(bits == 128 && a.Is4())) {
		return netip.Prefix{}, false
	}
	if bits == 128 && a.Is4() {
		ones -= 96
	}
	p = netip.PrefixFrom(a, ones)
	return p, p.IsValid()
}
