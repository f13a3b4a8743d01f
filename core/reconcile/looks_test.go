package reconcile

import (
	"context"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// ens6 is listed but IMDS has not served its device-number yet.
func ens6Pending() core.Instance {
	inst := twoENIs()
	inst.ENIs = inst.ENIs[:1]
	inst.Problems = []core.ENIProblem{{MAC: "02:00:00:00:06:06", Kind: core.ProblemNotPropagated,
		Reason: "02:00:00:00:06:06: device-number is not in IMDS yet"}}
	return inst
}

// A look pass reads only what is looked for (Snapshotter.Look: one macs/ listing while nothing
// changes), not every ENI (issue #11: 144 requests over a 3 s wait with two known ENIs, before),
// and the ENI is planned at the look that finds it.
func TestALookPassReadsOnlyWhatIsLookedFor(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: threeLinks()}
	r := New(imds, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	_, _ = r.Once(ctx, Pass{Reason: "start", Fetch: true, Full: true})
	for range 3 {
		if _, err := r.Once(ctx, Pass{Reason: "look", Fetch: true, Look: true}); err != nil {
			t.Fatal(err)
		}
	}
	imds.answers = []answer{{inst: threeENIs()}}
	if _, err := r.Once(ctx, Pass{Reason: "look", Fetch: true, Look: true}); err != nil {
		t.Fatal(err)
	}
	if len(imds.calls) != 1 || imds.looks != 4 {
		t.Errorf("4 looks made %d snapshot(s) and %d look(s); want 0 and 4", len(imds.calls)-1, imds.looks)
	}
	if !r.Planned("02:00:00:00:07:07") {
		t.Error("ens7 not planned at the look that found it")
	}
}

// The start pass configures what IMDS has complete (the primary) and does not wait for the rest:
// a pending ENI with a link is looked for with backoff like an unlisted one, and configured at
// the first look after IMDS completes it (issue #11, scenario 3).
func TestAPendingENIWithALinkIsLookedForWithBackoff(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: ens6Pending()}}}
	backend := &fakeBackend{}
	r := New(imds, &fakeKernel{links: twoLinks()}, backend, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: time.Hour, PropagationTimeout: 30 * time.Second})
	if !r.Planned("02:00:00:00:05:05") || r.Planned("02:00:00:00:06:06") {
		t.Fatal("the start pass must configure the primary and not ens6")
	}
	h.advance(100*time.Millisecond + 200*time.Millisecond)
	if looks := len(h.passes) - 1; looks != 2 {
		t.Fatalf("%d looks in 300 ms, want 2 (after 100 and 200 ms)", looks)
	}
	if len(imds.calls) != 1 || imds.looks != 2 {
		t.Errorf("2 looks made %d snapshot(s) and %d look(s); want 0 and 2: a pending ENI needs only its missing keys",
			len(imds.calls)-1, imds.looks)
	}
	imds.answers = []answer{{inst: twoENIs()}}
	h.advance(400 * time.Millisecond)
	if !r.Planned("02:00:00:00:06:06") {
		t.Fatal("ens6 not planned at the first look after IMDS completed it")
	}
	n := len(h.passes)
	h.advance(5 * time.Second)
	if len(h.passes) != n {
		t.Errorf("still looking after ens6 was configured: %+v", h.passes[n:])
	}
}

// A pending ENI without a link (detaching, or in another namespace) is not looked for.
func TestAPendingENIWithoutALinkIsNotLookedFor(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: ens6Pending()}}}
	r := New(imds, &fakeKernel{links: twoLinks()[:1]}, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: time.Hour, PropagationTimeout: 30 * time.Second})
	h.advance(10 * time.Second)
	if len(h.passes) != 1 {
		t.Errorf("%d passes, want the start pass only: %+v", len(h.passes), h.passes)
	}
}
