package networkd

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/applyrun"
)

// reasonLease is what an ENI whose files a reload changed waits for until its primary address is
// on the link.
const reasonLease = "systemd-networkd's DHCPv4 address on the link"

// leaseGrace is how long networkd gets to put an ENI's DHCPv4 address on the link after a reload
// changed its files, before the agent asks it to reconfigure the link; the VPC's DHCP server
// answers within milliseconds. leaseKicks bounds the reconfigurations: after that the ENI is
// reported configured with a warning, so a DHCP server that never answers does not keep the
// agent retrying forever.
const (
	leaseGrace = 5 * time.Second
	leaseKicks = 3
)

// leaseWait is an ENI whose DHCPv4 address the agent is waiting to see after a reload.
type leaseWait struct {
	since time.Time // the reload, or the last reconfiguration the agent asked for
	kicks int
}

// checkLeases keeps an ENI Deferred, after a reload changed its files, until networkd has put its
// primary address (DHCP) on the link; if that takes longer than leaseGrace it asks networkd to
// reconfigure the link. networkd 252 can lose the address for good when the switch from the base
// file to the agent's drops the base's lease while the new DHCP client requests the same address
// ("Requesting DHCPv4 address (removing)" in its log, about 1 hot attach in 25 in the lab): the
// link then stays without its primary address until the lease's renewal, 30 minutes later on EC2.
// reconfigured lists the ENIs (by MAC) whose files this pass changed.
func (b *Backend) checkLeases(ctx context.Context, plan core.Plan, reconfigured map[string]bool, rep *core.Report) {
	if b.kernel == nil || b.exec.DryRun() {
		return
	}
	now := b.now()
	for i, ir := range rep.Interfaces {
		if ir.Outcome != core.Configured && ir.Outcome != core.Deferred {
			continue
		}
		j := slices.IndexFunc(plan.Interfaces, func(p core.InterfacePlan) bool { return p.MAC == ir.MAC })
		if j < 0 {
			continue
		}
		p := plan.Interfaces[j]
		if !p.PrimaryIPv4.IsValid() {
			continue // IPv6-only: no DHCPv4 lease to wait for
		}
		w, waiting := b.leases[p.MAC]
		if reconfigured[p.MAC] && !waiting {
			w, waiting = leaseWait{since: now}, true
		}
		if !waiting {
			continue
		}
		has, err := hasAddress(b.kernel, p, p.PrimaryIPv4)
		if err != nil {
			b.log.Debug("cannot read the link's addresses; not waiting for its DHCPv4 address", "iface", p.Name, "error", err)
			delete(b.leases, p.MAC)
			continue
		}
		if has {
			delete(b.leases, p.MAC)
			continue
		}
		if now.Sub(w.since) >= leaseGrace {
			if w.kicks >= leaseKicks {
				b.log.Warn("systemd-networkd still has not put the ENI's DHCPv4 address on the link; giving up",
					"iface", p.Name, "address", p.PrimaryIPv4, "reconfigurations", w.kicks)
				delete(b.leases, p.MAC)
				continue
			}
			b.log.Warn("systemd-networkd has not put the ENI's DHCPv4 address on the link; asking it to reconfigure the link",
				"iface", p.Name, "address", p.PrimaryIPv4, "waited", now.Sub(w.since).Round(time.Millisecond))
			if err := b.reloader.ReconfigureLink(ctx, p.Index); err != nil {
				b.log.Warn("cannot reconfigure the link", "iface", p.Name, "error", err)
			} else {
				rep.Reloads++
			}
			w = leaseWait{since: now, kicks: w.kicks + 1}
		}
		b.leases[p.MAC] = w
		if ir.Outcome == core.Configured {
			d := applyrun.Deferred(reasonLease, nil)
			d.Name, d.MAC = ir.Name, ir.MAC
			rep.Interfaces[i] = d
		}
	}
	for mac := range b.leases {
		if !slices.ContainsFunc(plan.Interfaces, func(p core.InterfacePlan) bool { return p.MAC == mac }) {
			delete(b.leases, mac) // detached, or no longer planned
		}
	}
}

// hasAddress reports whether the ENI's link carries addr, with any prefix length.
func hasAddress(k Kernel, p core.InterfacePlan, addr netip.Addr) (bool, error) {
	have, err := k.Addresses(core.Link{Name: p.Name, Index: p.Index, MAC: p.MAC})
	if err != nil {
		return false, fmt.Errorf("networkd: %s: %w", p.Name, err)
	}
	return slices.ContainsFunc(have, func(a netip.Prefix) bool { return a.Addr() == addr }), nil
}
