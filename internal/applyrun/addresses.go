package applyrun

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// AddressKernel is the part of netlink address handling the backends that put secondary
// addresses in the kernel themselves share; *netlinkx.Handle implements it.
type AddressKernel interface {
	SyncAddresses(link core.Link, want, owned []netip.Prefix) (added, removed []netip.Prefix, err error)
}

// SyncAddresses makes the ENI's link carry the plan's secondary addresses and removes those of
// owned the plan no longer has. An address not in owned — the DHCP address, a container
// runtime's — is never removed. Changes are recorded in ch as "<iface>: address …".
//
// It returns what the agent owns afterwards, for the backend's record: the plan's addresses, and
// on an error also those of owned it could not remove, so that a later pass still removes them.
func SyncAddresses(k AddressKernel, p core.InterfacePlan, owned []netip.Prefix, ch *core.Changes) ([]netip.Prefix, error) {
	link := core.Link{Name: p.Name, Index: p.Index, MAC: p.MAC}
	added, removed, err := k.SyncAddresses(link, p.Addresses, owned)
	for _, a := range added {
		ch.Written = append(ch.Written, fmt.Sprintf("%s: address %s", p.Name, a))
	}
	for _, a := range removed {
		ch.Removed = append(ch.Removed, fmt.Sprintf("%s: address %s", p.Name, a))
	}
	record := slices.Clone(p.Addresses)
	if err == nil {
		return record, nil
	}
	for _, a := range owned {
		if !slices.Contains(record, a) && !slices.Contains(removed, a) {
			record = append(record, a)
		}
	}
	return record, fmt.Errorf("%s: addresses: %w", p.Name, err)
}
