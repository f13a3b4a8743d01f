package reconcile

import (
	"context"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// attachIMDS is a fakeIMDS that can read only the ENIs of new links.
type attachIMDS struct {
	fakeIMDS
	attached [][]string // the macs of each Attached call
}

func (f *attachIMDS) Attached(ctx context.Context, macs []string) (core.Instance, error) {
	f.mu.Lock()
	f.attached = append(f.attached, macs)
	f.mu.Unlock()
	return f.Look(ctx)
}

// A pass that is full only because a link appeared reads only that link's ENI (and the listing);
// the start pass and a pass merged with a resync read everything.
func TestALinkAddedPassReadsOnlyTheNewENI(t *testing.T) {
	imds := &attachIMDS{fakeIMDS: fakeIMDS{answers: []answer{{inst: twoENIs()}}}}
	r := New(imds, &fakeKernel{links: twoLinks()}, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	for _, p := range []Pass{
		{Reason: "start", Fetch: true, Full: true},
		{Reason: "link added ens6", Fetch: true, Full: true, Added: "02:00:00:00:06:06"},
		{Reason: "resync, link added ens6", Fetch: true, Full: true},
	} {
		if _, err := r.Once(ctx, p); err != nil {
			t.Fatalf("%s: %v", p.Reason, err)
		}
	}
	if len(imds.attached) != 1 || len(imds.attached[0]) != 1 || imds.attached[0][0] != "02:00:00:00:06:06" {
		t.Errorf("Attached calls %v, want one for 02:00:00:00:06:06", imds.attached)
	}
	if len(imds.calls) != 2 || imds.calls[0] != nil || imds.calls[1] != nil {
		t.Errorf("full reads %d (reuse %v), want 2 without reuse: start and resync", len(imds.calls), imds.calls)
	}
}

func TestMergedPassesReadEverythingWhenOneMust(t *testing.T) {
	added := Pass{Full: true, Added: "a"}
	for _, tc := range []struct {
		a, b Pass
		want string
	}{
		{added, Pass{Full: true, Added: "b"}, "a b"},
		{added, Pass{Reason: "link renamed"}, "a"},
		{added, Pass{Reason: "resync", Full: true}, ""},
		{Pass{Reason: "resync", Full: true}, added, ""},
	} {
		if got := mergeAdded(tc.a, tc.b); got != tc.want {
			t.Errorf("mergeAdded(%+v, %+v) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}
