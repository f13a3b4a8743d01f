package imds_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core/imds"
)

// The daemon's passes must not block on ENIs IMDS has not finished: Snapshot returns what is
// complete now (the primary at once on the mixed network-card tree of issue #11) with the others
// in Problems, and later reads with reuse poll only what the pending ENIs still miss (here their
// listings: network-card is not listed) until the card-0 fallback takes them.
func TestSnapshotReturnsPendingENIsAtOnceAndLaterReadsPollOnlyWhatTheyMiss(t *testing.T) {
	gets := &getCounter{n: map[string]int{}}
	l := startFake(t, "mixed-network-card.json", gets.wrap)
	c := newClient(t, l, func(o *imds.Options) { o.NetworkCardTimeout = 300 * time.Millisecond })
	inst := snapshot(t, c, nil)
	if diff := cmp.Diff([]string{primaryMAC, "02:00:00:00:08:08", "02:00:00:00:09:09"}, macs(inst)); diff != "" {
		t.Errorf("ENIs complete at once (-want +got):\n%s", diff)
	}
	pending := []string{secondaryMAC, "02:00:00:00:07:07"}
	var got []string
	for _, p := range inst.Problems {
		got = append(got, p.MAC)
	}
	if diff := cmp.Diff(pending, got); diff != "" {
		t.Errorf("pending ENIs (-want +got):\n%s", diff)
	}
	for p, n := range gets.counts() {
		if n > 1 {
			t.Errorf("the first read fetched %s %d times: it waited", p, n)
		}
	}

	// The daemon's looks: reads with reuse until the fallback after NetworkCardTimeout.
	for i := 0; len(inst.Problems) > 0 && i < 100; i++ {
		time.Sleep(20 * time.Millisecond)
		inst = snapshot(t, c, &inst)
	}
	if len(inst.Problems) != 0 || len(inst.ENIs) != 5 {
		t.Fatalf("after the fallback: ENIs %v, problems %v", macs(inst), inst.Problems)
	}
	for p, n := range gets.counts() {
		for _, mac := range pending {
			if n > 1 && strings.Contains(p, mac+"/") && !strings.HasSuffix(p, "/") {
				t.Errorf("the looks re-read %s (%d times) although they had it", p, n)
			}
		}
	}
}

// A look for a link IMDS does not list costs one request: the macs/ listing.
func TestMACsIsOneRequest(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	c := newClient(t, l)
	if _, err := c.MACs(context.Background()); err != nil { // token PUT + macs/
		t.Fatal(err)
	}
	before := c.Requests()
	got, err := c.MACs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Requests() - before; n != 1 {
		t.Errorf("MACs sent %d requests, want 1", n)
	}
	if diff := cmp.Diff([]string{primaryMAC, secondaryMAC}, got); diff != "" {
		t.Errorf("MACs (-want +got):\n%s", diff)
	}
}

// One-shot commands (plan, apply) wait for pending ENIs, bounded by PropagationTimeout.
func TestWaitingSnapshotWaitsForPendingENIs(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	l.fake.NotFoundUntil(secondaryMAC+"/device-number", 3)
	c := newClient(t, l)
	inst, err := c.Waiting().Snapshot(context.Background(), nil)
	if err != nil || len(inst.Problems) != 0 {
		t.Fatalf("Waiting().Snapshot = problems %v, %v; want the ENI complete", inst.Problems, err)
	}
}
