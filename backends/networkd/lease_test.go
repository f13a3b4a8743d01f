package networkd

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

// leaseOf is the address DHCP gives the ENI, as the kernel lists it.
func leaseOf(p core.InterfacePlan) netip.Prefix {
	return netip.PrefixFrom(p.PrimaryIPv4, p.SubnetIPv4.Bits())
}

// networkd 252 can lose an ENI's DHCPv4 address when the reload that switches the link from the
// base file to the agent's races its DHCP client (seen in the lab, about 1 hot attach in 25). The
// ENI stays Deferred until the address is on the link, and networkd is asked to reconfigure the
// link once leaseGrace has passed without it — a bounded number of times.
func TestAnENIWhoseDHCPAddressNeverCameIsReconfigured(t *testing.T) {
	f := newFixture(t)
	clock := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	f.backend.now = func() time.Time { return clock }
	plan, links := twoENIs()
	ens5, ens6 := plan.Interfaces[0], plan.Interfaces[1]
	f.kernel.leases = map[string]netip.Prefix{ens5.Name: leaseOf(ens5)} // ens6's never comes

	rep := plantest.Apply(t, f.backend, plan, links)
	if got := plantest.OutcomeOf(t, rep, "ens5"); got.Outcome != core.Configured {
		t.Errorf("ens5, which has its DHCP address: %+v, want configured", got)
	}
	if got := plantest.OutcomeOf(t, rep, "ens6"); got.Outcome != core.Deferred || got.Reason != reasonLease {
		t.Errorf("ens6 right after the reload: %+v, want deferred for %q", got, reasonLease)
	}

	clock = clock.Add(leaseGrace - time.Millisecond)
	plantest.Apply(t, f.backend, plan, links)
	if len(f.reloader.reconfigured) != 0 {
		t.Fatalf("reconfigured %v before leaseGrace passed", f.reloader.reconfigured)
	}

	for kick := 1; kick <= leaseKicks; kick++ {
		clock = clock.Add(leaseGrace)
		rep = plantest.Apply(t, f.backend, plan, links)
		if len(f.reloader.reconfigured) != kick || f.reloader.reconfigured[kick-1] != ens6.Index {
			t.Fatalf("after %d grace periods: reconfigured %v, want ens6 (%d) %d times", kick, f.reloader.reconfigured, ens6.Index, kick)
		}
		if got := plantest.OutcomeOf(t, rep, "ens6"); got.Outcome != core.Deferred {
			t.Errorf("ens6 after reconfiguration %d: %+v, want deferred", kick, got)
		}
	}
	clock = clock.Add(leaseGrace)
	rep = plantest.Apply(t, f.backend, plan, links)
	if len(f.reloader.reconfigured) != leaseKicks {
		t.Errorf("reconfigured %d times, want at most %d", len(f.reloader.reconfigured), leaseKicks)
	}
	if got := plantest.OutcomeOf(t, rep, "ens6"); got.Outcome != core.Configured {
		t.Errorf("ens6 after giving up: %+v, want configured (not deferred forever)", got)
	}
	if f.reloader.calls != 1 {
		t.Errorf("%d reloads, want 1: no file changed after the first pass", f.reloader.calls)
	}
}

func TestAReconfigurationThatBringsTheDHCPAddressSettlesTheENI(t *testing.T) {
	f := newFixture(t)
	clock := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	f.backend.now = func() time.Time { return clock }
	plan, links := twoENIs()
	ens5, ens6 := plan.Interfaces[0], plan.Interfaces[1]
	f.kernel.leases = map[string]netip.Prefix{ens5.Name: leaseOf(ens5)}
	f.reloader.onReconfigure = func(int) { f.kernel.leases[ens6.Name] = leaseOf(ens6) }

	plantest.Apply(t, f.backend, plan, links)
	clock = clock.Add(leaseGrace)
	plantest.Apply(t, f.backend, plan, links)
	rep := plantest.Apply(t, f.backend, plan, links)
	if got := plantest.OutcomeOf(t, rep, "ens6"); got.Outcome != core.Configured {
		t.Errorf("ens6 once its address is back: %+v, want configured", got)
	}
	if len(f.reloader.reconfigured) != 1 {
		t.Errorf("reconfigured %v, want once", f.reloader.reconfigured)
	}
	// A later pass that changes nothing of ens6 does not wait for anything again.
	delete(f.kernel.leases, ens6.Name)
	clock = clock.Add(10 * leaseGrace)
	plantest.Apply(t, f.backend, plan, links)
	if len(f.reloader.reconfigured) != 1 {
		t.Errorf("reconfigured %v after the ENI settled, want no more", f.reloader.reconfigured)
	}
}

// An IPv6-only ENI has no DHCPv4 address to wait for.
func TestAnIPv6OnlyENIDoesNotWaitForADHCPv4Address(t *testing.T) {
	f := newFixture(t)
	f.kernel.leases = map[string]netip.Prefix{}
	p := plantest.IPv6Only()
	plan := core.Plan{Interfaces: []core.InterfacePlan{p}}
	links := []core.Link{{Name: p.Name, Index: p.Index, MAC: p.MAC}}
	rep := plantest.Apply(t, f.backend, plan, links)
	if got := plantest.OutcomeOf(t, rep, p.Name); got.Reason == reasonLease {
		t.Errorf("IPv6-only %s: %+v, waits for a DHCPv4 address", p.Name, got)
	}
}
