package imds_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core/imds"
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
	inst := snapshot(t, c, nil)
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
