package imds_test

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core/imds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// getCounter counts the GETs per path that reach the fake.
type getCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (g *getCounter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			g.mu.Lock()
			g.n[r.URL.Path]++
			g.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// counts returns how many GETs each path got so far.
func (g *getCounter) counts() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.n)
}

// keysReadMoreThanOnce lists the ENI keys (not directory listings) fetched more than once.
func (g *getCounter) keysReadMoreThanOnce() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for p, n := range g.n {
		if n > 1 && strings.Contains(p, "/macs/") && !strings.HasSuffix(p, "/") {
			out[p] = n
		}
	}
	return out
}

// The tree of issue #11: network-card is served by the card-1 ENI and by device 3, not by the
// primary nor devices 1 and 2. The primary is card 0 at once; devices 1 and 2 are waited for, by
// polling their listings only (never the keys already read), and fall back to card 0 when the
// wait is over, as amazon-ec2-net-utils's _get_network_card does. Before the fix the read
// re-fetched every key of four ENIs for the whole wait and ended with all card-0 ENIs pending.
func TestMixedNetworkCardTreeFallsBackToCardZero(t *testing.T) {
	gets := &getCounter{n: map[string]int{}}
	l := startFake(t, "mixed-network-card.json", gets.wrap)
	c := newClient(t, l, func(o *imds.Options) { o.MaxBackoff = 200 * time.Millisecond })
	inst := waited(t, c, nil)
	t.Logf("%d requests", c.Requests())

	want := map[string]int{primaryMAC: 0, secondaryMAC: 0, "02:00:00:00:07:07": 0, "02:00:00:00:08:08": 0, "02:00:00:00:09:09": 1}
	got := map[string]int{}
	for _, e := range inst.ENIs {
		got[e.MAC] = e.NetworkCard
	}
	if diff := cmp.Diff(want, got); diff != "" || len(inst.Problems) != 0 {
		t.Errorf("ENIs and their cards (-want +got):\n%s\nproblems: %v", diff, inst.Problems)
	}
	if again := gets.keysReadMoreThanOnce(); len(again) != 0 {
		t.Errorf("the wait re-read keys it already had: %v", again)
	}
}

// An ENI IMDS fills in key by key (fakeimds.AttachSteps) is complete at the end of one Snapshot,
// and the wait fetched every key once: the listing tells which keys arrived, only those are
// read.
func TestSnapshotFollowsAnENIPropagatingKeyByKey(t *testing.T) {
	gets := &getCounter{n: map[string]int{}}
	l := startFake(t, "imds-dual-stack.json", gets.wrap)
	const late = "02:00:00:00:07:07"
	keys := map[string]scenario.Value{
		"device-number": {"2"}, "interface-id": {"eni-00000000000000007"},
		"local-ipv4s": {"10.0.2.7"}, "subnet-ipv4-cidr-block": {"10.0.2.0/24"},
	}
	l.fake.Apply(fakeimds.Step{MAC: late, Action: fakeimds.Publish}) // listed, no keys yet
	played := make(chan error, 1)
	go func() {
		played <- l.fake.Play(context.Background(), fakeimds.AttachSteps(late, keys, 0, 100*time.Millisecond), nil)
	}()
	c := newClient(t, l, func(o *imds.Options) { o.PropagationTimeout = 5 * time.Second; o.MaxBackoff = 50 * time.Millisecond })
	inst := waited(t, c, nil)
	if err := <-played; err != nil {
		t.Fatal(err)
	}
	if e := findENI(t, inst, late); e.DeviceNumber != 2 || len(inst.Problems) != 0 {
		t.Errorf("late ENI %+v, problems %v", e, inst.Problems)
	}
	if again := gets.keysReadMoreThanOnce(); len(again) != 0 {
		t.Errorf("the wait re-read keys it already had: %v", again)
	}
}
