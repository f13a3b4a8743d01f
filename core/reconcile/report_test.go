package reconcile

import (
	"context"
	"errors"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// An interface the backend leaves alone (NetworkManager does not manage it, ifcfg's EC2SYNC=no)
// gets nothing from any other part of the agent: no rules restored, no altnames, no rules deleted
// when it goes, and it is not planned.
func TestAnInterfaceTheBackendLeavesAloneIsLeftAloneByTheWholePass(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: twoLinks()}
	backend := &fakeBackend{outcomes: map[string]core.InterfaceReport{
		"ens6": {Outcome: core.LeftAlone, Reason: "NetworkManager does not manage ens6"}}}
	r := New(imds, kernel, backend, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	res, err := r.Once(ctx, Pass{Reason: "start", Fetch: true, Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Interfaces) != 1 || res.Plan.Interfaces[0].Name != "ens5" {
		t.Errorf("kept plan %v, want ens5 only", res.Plan.Interfaces)
	}
	if len(res.Plan.Ignored) != 1 || res.Plan.Ignored[0].Name != "ens6" ||
		res.Plan.Ignored[0].Reason != "left alone by the fake backend: NetworkManager does not manage ens6" {
		t.Errorf("ignored %+v, want ens6 with the backend's reason", res.Plan.Ignored)
	}
	if got := kernel.altnames["ens6"]; len(got) != 0 {
		t.Errorf("altnames %v added to the left-alone ens6", got)
	}
	if r.Planned("02:00:00:00:06:06") {
		t.Error("Planned(ens6) = true for an interface the backend leaves alone")
	}
	// ens5 is the primary (no rules without primary_rules): every rule wanted would be ens6's.
	if added, err := r.Restore(nil); err != nil || !added.Empty() || kernel.ensures() != 0 {
		t.Errorf("Restore added %+v (err %v): ens6's rules restored although the backend leaves it alone", added, err)
	}
	// Unchanged refresh: the backend is skipped, and ens6 stays left alone.
	if res, err = r.Once(ctx, Pass{Reason: "refresh", Fetch: true}); err != nil {
		t.Fatal(err)
	}
	if len(backend.plans) != 1 || len(res.Plan.Interfaces) != 1 || r.Planned("02:00:00:00:06:06") {
		t.Errorf("after an unchanged refresh: %d applies, kept plan %v; want 1 and ens5 only", len(backend.plans), res.Plan.Interfaces)
	}
	kernel.links = kernel.links[:1]
	if _, err := r.Once(ctx, Pass{Reason: "link removed ens6"}); err != nil {
		t.Fatal(err)
	}
	if len(kernel.deleted) != 0 {
		t.Errorf("detach of the left-alone ens6 deleted rules %v", kernel.deleted)
	}
}

// A backend that fails as a whole says nothing about each interface: what it last said it leaves
// alone stays left alone.
func TestALeftAloneInterfaceStaysLeftAloneWhenTheBackendFails(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: twoLinks()}
	backend := &fakeBackend{outcomes: map[string]core.InterfaceReport{"ens6": {Outcome: core.LeftAlone, Reason: "skip tag"}}}
	r := New(imds, kernel, backend, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	if _, err := r.Once(ctx, Pass{Fetch: true, Full: true}); err != nil {
		t.Fatal(err)
	}
	r.backend = failingBackend{}
	if _, err := r.Once(ctx, Pass{Fetch: true, Full: true}); err == nil {
		t.Fatal("backend failure not reported")
	}
	if r.Planned("02:00:00:00:06:06") {
		t.Error("ens6 planned again after a backend failure that reported no outcome for it")
	}
}

type failingBackend struct{}

func (failingBackend) Name() string { return "failing" }
func (failingBackend) Apply(context.Context, core.Plan, []core.Link) (core.Report, error) {
	return core.Report{}, errors.New("D-Bus: connection refused")
}

// A deferred interface (NetworkManager waiting for the RA router, ifcfg's route waiting for an
// RA) is applied again at the next refresh, not at the next full one.
func TestADeferredInterfaceIsAppliedAgainAtTheNextRefresh(t *testing.T) {
	for _, outcome := range []core.Outcome{core.Deferred, core.Failed} {
		t.Run(string(outcome), func(t *testing.T) {
			imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
			backend := &fakeBackend{outcomes: map[string]core.InterfaceReport{
				"ens6": {Outcome: outcome, Reason: "IPv6 router not known yet", Err: errors.New("boom")}}}
			r := New(imds, &fakeKernel{links: twoLinks()}, backend, core.DefaultPlanOptions(), nil)
			ctx := context.Background()
			_, _ = r.Once(ctx, Pass{Reason: "start", Fetch: true, Full: true})
			backend.outcomes = nil // the router appeared
			for range 2 {
				if _, err := r.Once(ctx, Pass{Reason: "refresh", Fetch: true}); err != nil {
					t.Fatal(err)
				}
			}
			if len(backend.plans) != 2 {
				t.Errorf("backend applied %d times, want 2: the start, then the first refresh (the second is unchanged)", len(backend.plans))
			}
		})
	}
}
