package reconcile

import (
	"context"
	"slices"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// adjustingBackend leaves one interface alone, as the ifcfg backend does for EC2SYNC=no.
type adjustingBackend struct {
	fakeBackend
	leave string
}

func (b *adjustingBackend) AdjustPlan(p core.Plan) core.Plan {
	p.Interfaces = slices.DeleteFunc(slices.Clone(p.Interfaces), func(i core.InterfacePlan) bool { return i.Name == b.leave })
	return p
}

func TestAnInterfaceTheBackendLeavesAloneIsLeftAloneByTheWholePass(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: twoLinks()}
	backend := &adjustingBackend{leave: "ens6"}
	r := New(imds, kernel, backend, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	res, err := r.Once(ctx, Pass{Reason: "start", Fetch: true, Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(backend.plans) != 1 || len(backend.plans[0].Interfaces) != 1 || len(res.Plan.Interfaces) != 1 {
		t.Fatalf("backend got %v, result %v; want the adjusted plan (ens5 only) in both", backend.plans, res.Plan.Interfaces)
	}
	// ens6's rules are in the planner's plan, not in the adjusted one: nothing to restore.
	if added, err := r.RestoreRules(); err != nil || len(added) != 0 || len(kernel.ensures()) != 0 {
		t.Errorf("RestoreRules added %v (err %v): ens6's rules restored although the backend leaves it alone", added, err)
	}
	kernel.links = kernel.links[:1]
	if _, err := r.Once(ctx, Pass{Reason: "link removed ens6"}); err != nil {
		t.Fatal(err)
	}
	if len(kernel.deleted) != 0 {
		t.Errorf("detach of the left-alone ens6 deleted rules %v", kernel.deleted)
	}
}
