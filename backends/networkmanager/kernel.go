package networkmanager

import (
	"errors"
	"net/netip"
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/applyrun"
)

// User-data keys of the agent's profile for an ENI whose rules and addresses the kernel carries.
const (
	// TagKernel says that the ENI's source rules and secondary addresses are not in the profile:
	// the agent keeps them in the kernel itself (see KernelCarried).
	TagKernel = "org.ec2-net-utils.kernel"
	// TagAddresses lists, space-separated, the secondary addresses the agent assigned to the ENI
	// with netlink: the ones it may remove. The DHCP addresses and a user's never are.
	TagAddresses = "org.ec2-net-utils.addresses"
)

// kernelCarries is TagKernel's value.
const kernelCarries = "rules addresses"

// KernelCarried reports whether the agent keeps an ENI's source rules and secondary addresses in
// the kernel (netlink) instead of in its profile: on a subnet with IPv6. NM 1.42 restarts IPv6 on
// the link at every Reapply (it toggles disable_ipv6), which deletes the DHCPv6 address and the
// link-local one and can leave DHCPv6 without a lease (issue #12). Addresses and prefixes come and
// go in IMDS; with them out of the profile, the profile of an ENI with IPv6 changes (and is
// reapplied) only when its stable part does: table routes, metric, MTU, main's default route.
func KernelCarried(p core.InterfacePlan) bool { return p.IPv6 }

// recordedAddresses are the addresses the profile's user data says the agent assigned.
func recordedAddresses(s Settings) []netip.Prefix {
	var out []netip.Prefix
	for f := range strings.FieldsSeq(userData(s)[TagAddresses]) {
		if a, err := netip.ParsePrefix(f); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// withRecord returns s with TagAddresses listing addrs (the key is left out when there are none).
func withRecord(s Settings, addrs []netip.Prefix) Settings {
	data := map[string]string{}
	for k, v := range userData(s) {
		data[k] = v
	}
	delete(data, TagAddresses)
	if len(addrs) > 0 {
		words := make([]string, len(addrs))
		for i, a := range addrs {
			words[i] = a.String()
		}
		data[TagAddresses] = strings.Join(words, " ")
	}
	out := make(Settings, len(s))
	for k, v := range s {
		out[k] = v
	}
	out["user"] = map[string]dbus.Variant{"data": dbus.MakeVariant(data)}
	return out
}

// syncKernel puts the ENI's source rules into the kernel and, with addresses, its secondary
// addresses, removing the rules of ours the plan no longer has (by numbering, see
// applyrun.SyncRules) and the addresses of owned it no longer has. It returns the addresses that
// are the agent's afterwards: the plan's, and those of owned it could not remove.
func (b *Backend) syncKernel(p core.InterfacePlan, owned []netip.Prefix, addresses bool, ch *core.Changes) ([]netip.Prefix, error) {
	record := slices.Clone(p.Addresses)
	if b.kernel == nil {
		return record, errors.New("no netlink handle for the source rules and addresses of an ENI with IPv6")
	}
	var errs []error
	if err := b.exec.Do("sync-rules", p.Name, func() error { return applyrun.SyncRules(b.kernel, p, ch) }); err != nil {
		errs = append(errs, err)
	}
	if !addresses {
		// Not yet: an activation is about to flush the link's IPv6 addresses. What was ours stays
		// ours until the next pass syncs.
		for _, a := range owned {
			if !slices.Contains(record, a) {
				record = append(record, a)
			}
		}
		return record, errors.Join(errs...)
	}
	err := b.exec.Do("sync-addresses", p.Name, func() error {
		var err error
		record, err = applyrun.SyncAddresses(b.kernel, p, owned, ch)
		return err
	})
	if err != nil {
		errs = append(errs, err)
	}
	return record, errors.Join(errs...)
}
