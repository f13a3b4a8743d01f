package networkmanager

import (
	"context"
	"errors"
	"fmt"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

var _ core.Describer = (*Backend)(nil)

// Carriers implements core.Describer: the profile the ENI's device runs (the agent's, the packaged
// base, or a user's, whose applied connection gets the agent's routing), then the agent's profile
// for the ENI if the device does not run it.
func (b *Backend) Carriers(ctx context.Context, p core.InterfacePlan) ([]core.Carrier, error) {
	list, err := b.api.Profiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("networkmanager: list profiles: %w", err)
	}
	st := newNMState(list)
	ours := st.ours[p.MAC]
	var out []core.Carrier
	dev, err := b.api.Device(ctx, p.Name)
	if err != nil && !errors.Is(err, errUnknownDevice) {
		return nil, fmt.Errorf("networkmanager: %s: %w", p.Name, err)
	}
	if active := st.byPath[dev.Active]; err == nil && active != nil {
		out = append(out, core.Carrier{Name: carrierName(active), InUse: true, Ours: active == ours})
	}
	if ours != nil && (len(out) == 0 || !out[0].Ours) {
		out = append(out, core.Carrier{Name: carrierName(ours), Ours: true})
	}
	if ours != nil && userData(ours.Settings)[TagKernel] != "" {
		// An ENI with IPv6: its rules and secondary addresses are in the kernel, not the profile.
		out = append(out, core.Carrier{Name: KernelCarrier(profileName(ours)), InUse: true, Ours: true})
	}
	return out, nil
}

// KernelCarrier names, for status, the kernel as the carrier of the source rules and secondary
// addresses of an ENI with IPv6, and where the agent records the addresses it added.
func KernelCarrier(profile string) string {
	return fmt.Sprintf("kernel: source rules and secondary addresses (recorded in %s of profile %q)", TagAddresses, profile)
}

// carrierName names a profile as nmcli shows it: its id, and its UUID, which stays when the id
// is not unique.
func carrierName(p *profile) string {
	return fmt.Sprintf("profile %q uuid %s", profileName(p), stringValue(p.Settings, "connection", "uuid"))
}
