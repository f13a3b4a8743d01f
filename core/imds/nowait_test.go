package imds_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/imds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
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

// A look (the daemon's, while a link's ENI is not listed or not complete) costs one request while
// nothing changes; once the MAC is listed it reads that ENI and, while it is pending, only the
// keys it misses. The known ENIs are never re-read by a look.
func TestALookReadsOnlyTheListingAndWhatIsNewOrMissing(t *testing.T) {
	gets := &getCounter{n: map[string]int{}}
	l := startFake(t, "imds-dual-stack.json", gets.wrap)
	c := newClient(t, l)
	first := snapshot(t, c, nil)
	look := func(what string, want int64) core.Instance {
		t.Helper()
		before := c.Requests()
		inst, err := c.Look(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n := c.Requests() - before; n != want {
			t.Errorf("look %s: %d requests, want %d", what, n, want)
		}
		return inst
	}
	if inst := look("with nothing new", 1); !cmp.Equal(first, inst, netipComparers) {
		t.Errorf("a look with nothing new changed the snapshot:\n%s", cmp.Diff(first, inst, netipComparers))
	}

	const late = "02:00:00:00:07:07"
	steps := fakeimds.AttachSteps(late, map[string]scenario.Value{
		"device-number": {"2"}, "interface-id": {"eni-00000000000000007"},
		"local-ipv4s": {"10.0.2.7"}, "subnet-ipv4-cidr-block": {"10.0.2.0/24"},
	}, 0, 0)
	l.fake.Apply(steps[0])                       // listed, no keys yet
	l.fake.Apply(steps[1])                       // device-number
	inst := look("at a new MAC with one key", 3) // macs/, its listing, device-number
	if len(inst.Problems) != 1 || inst.Problems[0].MAC != late {
		t.Fatalf("problems %v, want %s pending", inst.Problems, late)
	}
	look("at a pending ENI that got nothing new", 2) // macs/, its listing
	for _, st := range steps[2:] {
		l.fake.Apply(st)
	}
	inst = look("at a pending ENI that got its keys", 5) // macs/, its listing, 3 keys
	if e := findENI(t, inst, late); e.DeviceNumber != 2 || len(inst.Problems) != 0 || len(inst.ENIs) != 3 {
		t.Errorf("after the keys: %+v, ENIs %v, problems %v", e, macs(inst), inst.Problems)
	}
	if again := gets.keysReadMoreThanOnce(); len(again) != 0 {
		t.Errorf("looks re-read keys: %v", again)
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
