package reconcile

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// rawTwoENIs is twoENIs as IMDS serves it, ens5 with a secondary address.
func rawTwoENIs() core.RawInstance {
	return core.RawInstance{PrimaryMAC: "02:00:00:00:05:05", ENIs: map[string]map[string]string{
		"02:00:00:00:05:05": {core.KeyDeviceNumber: "0", core.KeyInterfaceID: "eni-5",
			core.KeyLocalIPv4s: "10.0.0.10\n10.0.0.11", core.KeySubnetIPv4CIDR: "10.0.0.0/24"},
		"02:00:00:00:06:06": {core.KeyDeviceNumber: "1", core.KeyInterfaceID: "eni-6",
			core.KeyLocalIPv4s: "10.0.1.10\n10.0.1.11", core.KeySubnetIPv4CIDR: "10.0.1.0/24"},
	}}
}

func parsed(t *testing.T, raw core.RawInstance) core.Instance {
	t.Helper()
	inst, err := core.ParseInstance(raw)
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// An ENI already configured whose IMDS data turns invalid keeps what it has: a bad value must
// not read as "this ENI has no addresses and rules any more". The planner makes it pending (core
// parse tests); here, through a full pass (the one that also sweeps orphaned rules), the backend
// gets no interface plan for it (an interface plan without its addresses and rules would ask for
// their removal), the reconciler deletes none of its rules (the orphan sweep included), the other
// ENI's change still applies, and the log names the ENI, the IMDS key and what is wrong with it.
func TestAConfiguredENIKeepsItsStateWhenIMDSTurnsInvalidForIt(t *testing.T) {
	const ens6MAC = "02:00:00:00:06:06"
	for _, tc := range []struct {
		name    string
		edit    map[string]string // ens6's keys changed
		problem string            // what the log must say of ens6
	}{
		{"secondary IP outside its subnet", map[string]string{core.KeyLocalIPv4s: "10.0.1.10\n10.0.2.7"},
			"invalid IMDS data: local-ipv4s: 10.0.2.7 is outside subnet-ipv4-cidr-block 10.0.1.0/24"},
		{"/32 subnet", map[string]string{core.KeySubnetIPv4CIDR: "10.0.1.10/32", core.KeyLocalIPv4s: "10.0.1.10"},
			"invalid IMDS data: subnet-ipv4-cidr-block: 10.0.1.10/32 is longer than /28, the smallest EC2 subnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			valid := parsed(t, rawTwoENIs())
			bad := rawTwoENIs()
			for k, v := range tc.edit {
				bad.ENIs[ens6MAC][k] = v
			}
			// The same read gives ens5 another secondary address: the valid ENI must still apply.
			bad.ENIs["02:00:00:00:05:05"][core.KeyLocalIPv4s] += "\n10.0.0.12"
			invalid := parsed(t, bad)

			imds := &fakeIMDS{answers: []answer{{inst: valid}, {inst: invalid}}}
			backend := &fakeBackend{}
			kernel := &fakeKernel{links: twoLinks(), rulesKept: true}
			var logs bytes.Buffer
			log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
			r := New(imds, kernel, backend, core.DefaultPlanOptions(), log)
			ctx := context.Background()
			if _, err := r.Once(ctx, Pass{Reason: "start", Fetch: true, Full: true}); err != nil {
				t.Fatal(err)
			}
			var ens6Rules []core.Rule
			for _, ifc := range backend.plans[0].Interfaces {
				if ifc.MAC == ens6MAC {
					ens6Rules = ifc.Rules
				}
			}
			if len(ens6Rules) == 0 {
				t.Fatalf("ens6 has no rules in the start plan: %+v", backend.plans[0])
			}
			kernel.rules = ens6Rules // in the kernel, as configured: the orphan sweep sees them

			res, err := r.Once(ctx, Pass{Reason: "refresh", Fetch: true, Full: true})
			if err != nil {
				t.Errorf("a pass with one invalid ENI failed: %v (the other ENIs must go on)", err)
			}
			if len(backend.plans) != 2 {
				t.Fatalf("backend applied %d times, want 2", len(backend.plans))
			}
			plan := backend.plans[1]
			for _, ifc := range plan.Interfaces {
				if ifc.MAC == ens6MAC {
					t.Errorf("the backend was asked to configure ens6 as %+v: its invalid data would replace what it has", ifc)
				}
			}
			if !slices.ContainsFunc(plan.Pending, func(p core.Pending) bool { return p.MAC == ens6MAC && p.Name == "ens6" }) {
				t.Errorf("ens6 is not pending with its link name in the plan: %+v", plan.Pending)
			}
			if !slices.ContainsFunc(res.Plan.Pending, func(p core.Pending) bool { return p.MAC == ens6MAC && p.Reason == tc.problem }) {
				t.Errorf("pending %+v, want ens6 with reason %q", res.Plan.Pending, tc.problem)
			}
			if kernel.deleted != nil {
				t.Errorf("rules deleted: %v; ens6's must stay while its data is invalid", kernel.deleted)
			}
			if !slices.ContainsFunc(plan.Interfaces, func(ifc core.InterfacePlan) bool {
				return ifc.Name == "ens5" && slices.Contains(ifc.Addresses, netip.MustParsePrefix("10.0.0.12/32"))
			}) {
				t.Errorf("ens5's new secondary address is not applied: %+v", plan.Interfaces)
			}
			line := ""
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, "ENI not configured") {
					line = l
				}
			}
			for _, want := range []string{"iface=ens6", "mac=" + ens6MAC, tc.problem} {
				if !strings.Contains(line, want) {
					t.Errorf("log line %q does not say %q", strings.TrimSpace(line), want)
				}
			}
		})
	}
}
