package core_test

import (
	"net/netip"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// The invariants behind the container-host goldens, stated once: what each mode must never plan.
func TestContainerHostModesNeverPlanWhatOthersOwn(t *testing.T) {
	for _, c := range []struct {
		scenario string
		check    func(t *testing.T, p core.Plan)
	}{
		{"stand-back", func(t *testing.T, p core.Plan) {
			if len(p.Interfaces) != 0 || len(p.Ignored) != 3 {
				t.Errorf("standing back planned %d interfaces and ignored %d ENIs; want 0 and all 3", len(p.Interfaces), len(p.Ignored))
			}
		}},
		{"vpc-cni", func(t *testing.T, p core.Plan) {
			if len(p.Interfaces) != 1 || !p.Interfaces[0].Primary {
				t.Fatalf("planned %v; want the primary ENI only", p.Interfaces)
			}
			ifc := p.Interfaces[0]
			if len(ifc.Addresses) != 0 {
				t.Errorf("pod addresses assigned to the host: %v", ifc.Addresses)
			}
			own := map[netip.Prefix]bool{netip.MustParsePrefix("10.99.0.10/32"): true, netip.MustParsePrefix("2600:1f14:abc:de00::10/128"): true}
			for _, r := range ifc.Rules {
				if !own[r.From] {
					t.Errorf("rule for a pod address or prefix: %+v", r)
				}
			}
		}},
		{"secondary-addresses-off", func(t *testing.T, p core.Plan) {
			for _, ifc := range p.Interfaces {
				if len(ifc.Addresses) != 0 {
					t.Errorf("%s: secondary addresses assigned: %v", ifc.Name, ifc.Addresses)
				}
			}
			if got := len(p.Interfaces[1].Rules); got != 4 {
				t.Errorf("ens6 has %d rules; want all 4 (3 addresses, 1 prefix): the addresses are still the ENI's", got)
			}
		}},
	} {
		t.Run(c.scenario, func(t *testing.T) { c.check(t, planScenario(t, "../testdata/scenarios/"+c.scenario+".json")) })
	}
}
