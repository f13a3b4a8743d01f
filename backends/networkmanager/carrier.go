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
// for the ENI if the device does not run it. On the base's activation with the agent's settings
// reapplied, the agent's profile comes first, in use, then the base.
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
		if ours != nil && IsBase(active.Settings) && b.appliesOurs(ctx, dev, ours) {
			// The agent's settings reapplied onto the base's activation (runOnBase): its profile
			// is what the device applies, through that activation.
			out = append(out, core.Carrier{Name: carrierName(ours), InUse: true, Ours: true})
		}
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

// appliesOurs reports whether the device's applied connection holds the IP settings of the
// agent's profile.
func (b *Backend) appliesOurs(ctx context.Context, dev device, ours *profile) bool {
	applied, _, err := b.api.Applied(ctx, dev.Path)
	return err == nil && diff(ipSettings(ours.Settings), applied) == ""
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
