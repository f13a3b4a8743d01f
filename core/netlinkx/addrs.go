package netlinkx

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Addresses lists the link's global-scope addresses of both families, each with its prefix
// length as configured (10.0.1.7/24 from DHCP, 10.0.1.8/32 for a secondary).
// Equivalent to: ip addr show dev <link> scope global
func (h *Handle) Addresses(link core.Link) ([]netip.Prefix, error) {
	l, err := h.linkFor(link)
	if err != nil {
		return nil, err
	}
	return h.addresses(l)
}

func (h *Handle) addresses(l netlink.Link) ([]netip.Prefix, error) {
	addrs, err := retryDump("list addresses of "+l.Attrs().Name, func() ([]netlink.Addr, error) {
		return h.nl.AddrList(l, netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// EnsureAddresses adds the addresses of want the link lacks and returns those it added. A
// full-length prefix (/32, /128) is a secondary address that the subnet route already covers; it
// is added with IFA_F_NOPREFIXROUTE so the kernel does not add a route of its own for it (it
// would for an IPv6 /128, in main, outside any table we manage).
// Equivalent to: ip addr add <addr> dev <link> [noprefixroute], for each missing address.
func (h *Handle) EnsureAddresses(link core.Link, want []netip.Prefix) (added []netip.Prefix, err error) {
	l, err := h.linkFor(link)
	if err != nil {
		return nil, err
	}
	current, err := h.addresses(l)
	if err != nil {
		return nil, err
	}
	added, _, err = syncPrefixes(current, want, nil, h.addAddr(l), nil)
	return added, err
}

// DeleteAddresses removes exactly these addresses from the link and returns those it removed;
// an address that is already gone is not an error.
// Equivalent to: ip addr del <addr> dev <link>, for each address.
func (h *Handle) DeleteAddresses(link core.Link, addrs []netip.Prefix) (removed []netip.Prefix, err error) {
	l, err := h.linkFor(link)
	if err != nil {
		return nil, err
	}
	del := h.delAddr(l)
	var errs []error
	for _, p := range addrs {
		switch err := del(p); {
		case err == nil:
			removed = append(removed, p)
		case errors.Is(err, errGone):
		default:
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// SyncAddresses makes the link carry every address of want, then removes the addresses of owned
// that are no longer wanted. Adding first means that when an address is replaced the link is
// never left without one. An address not in owned — the DHCP address, a user's — is never
// removed, whatever want says.
// Equivalent to: ip addr add <new> dev <link>...; then ip addr del <stale> dev <link>...
func (h *Handle) SyncAddresses(link core.Link, want, owned []netip.Prefix) (added, removed []netip.Prefix, err error) {
	l, err := h.linkFor(link)
	if err != nil {
		return nil, nil, err
	}
	current, err := h.addresses(l)
	if err != nil {
		return nil, nil, err
	}
	return syncPrefixes(current, want, owned, h.addAddr(l), h.delAddr(l))
}

// errGone and errPresent mark deletes and adds that found the work already done (by a manager
// or a concurrent event), so callers can report only what they changed.
var (
	errGone    = errors.New("address not present")
	errPresent = errors.New("address already present")
)

func (h *Handle) addAddr(l netlink.Link) func(netip.Prefix) error {
	return func(p netip.Prefix) error {
		a := &netlink.Addr{IPNet: ipNet(p)}
		if p.IsSingleIP() {
			a.Flags = unix.IFA_F_NOPREFIXROUTE
		}
		if p.Addr().Is6() {
			// EC2 assigns each IPv6 address to one ENI only: duplicate address detection would
			// only keep the address tentative, unusable as a source, for a second or two.
			a.Flags |= unix.IFA_F_NODAD
		}
		err := h.nl.AddrAdd(l, a)
		if errors.Is(err, unix.EEXIST) {
			return errPresent
		}
		if err != nil {
			return fmt.Errorf("netlinkx: add address %s to %s: %w", p, l.Attrs().Name, err)
		}
		return nil
	}
}

func (h *Handle) delAddr(l netlink.Link) func(netip.Prefix) error {
	return func(p netip.Prefix) error {
		err := h.nl.AddrDel(l, &netlink.Addr{IPNet: ipNet(p)})
		if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return errGone
		}
		if err != nil {
			return fmt.Errorf("netlinkx: delete address %s from %s: %w", p, l.Attrs().Name, err)
		}
		return nil
	}
}

// syncPrefixes is the add-before-delete diff (Tailscale's cidrDiff): it adds every prefix of want
// missing from current, and only then deletes the prefixes of current that are in owned but not
// in want. Prefixes compare exactly (address and length), so owning 10.0.1.7/32 never removes a
// DHCP 10.0.1.7/24. A failed add does not stop the deletes: what is removed is unwanted anyway.
// del may be nil when nothing is owned.
func syncPrefixes(current, want, owned []netip.Prefix, add, del func(netip.Prefix) error) (added, removed []netip.Prefix, err error) {
	var errs []error
	var tried []netip.Prefix
	for _, p := range want {
		if slices.Contains(current, p) || slices.Contains(tried, p) {
			continue
		}
		tried = append(tried, p)
		switch err := add(p); {
		case err == nil:
			added = append(added, p)
		case errors.Is(err, errPresent):
		default:
			errs = append(errs, err)
		}
	}
	for _, p := range current {
		if !slices.Contains(owned, p) || slices.Contains(want, p) || slices.Contains(removed, p) {
			continue
		}
		switch err := del(p); {
		case err == nil:
			removed = append(removed, p)
		case errors.Is(err, errGone):
		default:
			errs = append(errs, err)
		}
	}
	return added, removed, errors.Join(errs...)
}
