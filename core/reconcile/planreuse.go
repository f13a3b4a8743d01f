package reconcile

import (
	"reflect"
	"slices"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// planCache keeps the last plan with its inputs. The planner is pure, so when a refresh read the
// same instance and sees the same links and options, the last plan is the plan: comparing the
// inputs costs a fraction of planning 32 ENIs × 54 rules, and handing back the very same plan
// lets appliedState.same compare it in constant time (reflect.DeepEqual stops at identical slices).
// Measured in the lab at 32 ENIs (issue #16, docs/performance.md).
type planCache struct {
	ok    bool
	inst  core.Instance
	links []core.Link
	opts  core.PlanOptions
	plan  core.Plan
}

// get returns core.NewPlan(inst, links, opts), from the cache when the inputs are unchanged.
// The caller must not modify the returned plan (nothing in a pass does: leaveAlone copies).
func (c *planCache) get(inst core.Instance, links []core.Link, opts core.PlanOptions) core.Plan {
	if c.ok && slices.Equal(c.links, links) && sameInstance(c.inst, inst) && reflect.DeepEqual(c.opts, opts) {
		return c.plan
	}
	p := core.NewPlan(inst, links, opts)
	*c = planCache{ok: true, inst: inst, links: slices.Clone(links), opts: opts, plan: p}
	return p
}

// sameInstance compares two snapshots field by field: netip values are comparable, so this
// allocates nothing and is linear in the addresses.
func sameInstance(a, b core.Instance) bool {
	return a.PrimaryMAC == b.PrimaryMAC && slices.Equal(a.Problems, b.Problems) && slices.EqualFunc(a.ENIs, b.ENIs, sameENI)
}

func sameENI(a, b core.ENI) bool {
	return a.MAC == b.MAC && a.InterfaceID == b.InterfaceID && a.DeviceNumber == b.DeviceNumber &&
		a.NetworkCard == b.NetworkCard && a.SubnetIPv4 == b.SubnetIPv4 &&
		slices.Equal(a.LocalIPv4s, b.LocalIPv4s) && slices.Equal(a.IPv6s, b.IPv6s) &&
		slices.Equal(a.IPv4Prefixes, b.IPv4Prefixes) && slices.Equal(a.IPv6Prefixes, b.IPv6Prefixes) &&
		slices.Equal(a.SubnetIPv6, b.SubnetIPv6) && slices.Equal(a.VPCIPv4, b.VPCIPv4) && slices.Equal(a.VPCIPv6, b.VPCIPv6)
}
