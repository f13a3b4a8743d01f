package reconcile

import (
	"context"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// What the host shows is read at every pass: an opt-out written while the daemon runs (kops
// writes it after boot) makes the next pass plan nothing, and removing it brings the ENIs back.
func TestAdjustOptionsIsAppliedAtEveryPass(t *testing.T) {
	standBack := ""
	adjust := func(o core.PlanOptions) core.PlanOptions { o.StandBack = standBack; return o }
	backend := &fakeBackend{}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, &fakeKernel{links: twoLinks()}, backend,
		core.DefaultPlanOptions(), nil, AdjustOptions(adjust))
	ctx := context.Background()
	for _, c := range []struct {
		standBack string
		want      int
	}{{"", 2}, {"opt-out", 0}, {"", 2}} {
		standBack = c.standBack
		res, err := r.Once(ctx, Pass{Reason: "refresh", Fetch: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.Plan.Interfaces); got != c.want {
			t.Errorf("stand back %q: %d interfaces planned, want %d", c.standBack, got, c.want)
		}
	}
	if got := len(backend.plans[1].Ignored); got != 2 {
		t.Errorf("standing back: %d ENIs ignored, want 2 with the reason", got)
	}
}
