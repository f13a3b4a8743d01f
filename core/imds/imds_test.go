package imds_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/imds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

const (
	primaryMAC   = "02:00:00:00:05:05"
	secondaryMAC = "02:00:00:00:06:06"
)

var netipComparers = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

type lab struct {
	fake *fakeimds.Server
	sc   *scenario.Scenario
	url  string
}

// startFake serves a scenario file from testdata/scenarios on loopback. handler, when given,
// wraps the fake (to change the scenario at a precise request).
func startFake(t *testing.T, name string, wrap ...func(http.Handler) http.Handler) *lab {
	t.Helper()
	sc, err := scenario.Load("../../testdata/scenarios/" + name)
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeimds.New(sc)
	var h http.Handler = fake
	for _, w := range wrap {
		h = w(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &lab{fake: fake, sc: sc, url: ts.URL}
}

// newClient talks to the fake only: never the real endpoint, whatever the environment says.
func newClient(t *testing.T, l *lab, edit ...func(*imds.Options)) *imds.Client {
	t.Helper()
	if !strings.HasPrefix(l.url, "http://127.0.0.1:") {
		t.Fatalf("refusing a non-loopback endpoint %s", l.url)
	}
	opts := imds.Options{
		Endpoint:           l.url,
		Timeout:            time.Second,
		MaxAttempts:        4,
		MaxBackoff:         5 * time.Millisecond,
		PropagationTimeout: 2 * time.Second,
		Version:            "1.2.3-test",
		Logger:             hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}}),
	}
	for _, e := range edit {
		e(&opts)
	}
	c, err := imds.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func snapshot(t *testing.T, c *imds.Client, reuse *core.Instance) core.Instance {
	t.Helper()
	inst, err := c.Snapshot(context.Background(), reuse)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return inst
}

// waited is what plan and apply read: a snapshot that waits for ENIs still propagating.
func waited(t *testing.T, c *imds.Client, reuse *core.Instance) core.Instance {
	t.Helper()
	inst, err := c.Waiting().Snapshot(context.Background(), reuse)
	if err != nil {
		t.Fatalf("Waiting().Snapshot: %v", err)
	}
	return inst
}

func macs(inst core.Instance) []string {
	var out []string
	for _, e := range inst.ENIs {
		out = append(out, e.MAC)
	}
	return out
}

func findENI(t *testing.T, inst core.Instance, mac string) core.ENI {
	t.Helper()
	for _, e := range inst.ENIs {
		if e.MAC == mac {
			return e
		}
	}
	t.Fatalf("no ENI %s in %v (problems %v)", mac, macs(inst), inst.Problems)
	return core.ENI{}
}

func TestRawIsWhatTheScenarioServes(t *testing.T) {
	for _, name := range []string{"imds-dual-stack.json", "imds-multi-card.json", "imds-ipv6-only.json"} {
		t.Run(name, func(t *testing.T) {
			l := startFake(t, name)
			raw, err := newClient(t, l).Raw(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			// Absent keys (404) are absent from the map: an IPv6-only ENI has no local-ipv4s
			// entry, not an empty one.
			if diff := cmp.Diff(l.sc.Raw(), raw); diff != "" {
				t.Errorf("Raw (-scenario +read):\n%s", diff)
			}
		})
	}
}

func TestSnapshotIsValidatedAndCanonical(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	inst := snapshot(t, newClient(t, l), nil)
	want, err := core.ParseInstance(l.sc.Raw())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, inst, netipComparers); diff != "" {
		t.Errorf("Snapshot differs from ParseInstance of the scenario (-want +got):\n%s", diff)
	}
	// IMDS served "2600:1f14:abc:de01:b84d:0:0:0/80": it must come out in the form the kernel
	// prints, or every refresh would see a change (amazon-ec2-net-utils #68).
	e := findENI(t, inst, secondaryMAC)
	got := []string{e.IPv6s[0].String(), e.IPv6Prefixes[0].String(), e.SubnetIPv6[0].String()}
	if diff := cmp.Diff([]string{"2600:1f14:abc:de01::6", "2600:1f14:abc:de01:b84d::/80", "2600:1f14:abc:de01::/64"}, got); diff != "" {
		t.Errorf("IPv6 not canonical (-want +got):\n%s", diff)
	}
}

func TestIPv6OnlyAndMultiCardInstances(t *testing.T) {
	l := startFake(t, "imds-ipv6-only.json")
	inst := snapshot(t, newClient(t, l), nil)
	if len(inst.Problems) != 0 || len(inst.ENIs) != 2 {
		t.Fatalf("IPv6-only: ENIs %v problems %v", macs(inst), inst.Problems)
	}
	if e := findENI(t, inst, secondaryMAC); e.SubnetIPv4.IsValid() || len(e.IPv6s) != 2 {
		t.Errorf("IPv6-only ENI: %+v", e)
	}

	l = startFake(t, "imds-multi-card.json")
	inst = snapshot(t, newClient(t, l), nil)
	var slots [][2]int
	for _, e := range inst.ENIs {
		slots = append(slots, [2]int{e.NetworkCard, e.DeviceNumber})
	}
	if diff := cmp.Diff([][2]int{{0, 0}, {0, 1}, {1, 0}}, slots); diff != "" || len(inst.Problems) != 0 {
		t.Errorf("multi-card (card, device) (-want +got):\n%s\nproblems %v", diff, inst.Problems)
	}
}

func TestTokenIsRefreshedAfterExpiry(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	c := newClient(t, l)
	first := snapshot(t, c, nil)

	l.fake.ExpireTokens()
	before := c.Requests()
	again := snapshot(t, c, nil)
	// One GET answered 401, one PUT for a new token, the GET again: two extra requests.
	if n := c.Requests() - before; n != 21 {
		t.Errorf("refresh after ExpireTokens took %d requests, want 19 + 2", n)
	}
	if diff := cmp.Diff(first, again, netipComparers); diff != "" {
		t.Errorf("snapshot after token refresh differs:\n%s", diff)
	}

	// A token IMDS drops before the TTL it promised (restart, clock jump) is refreshed as well.
	var mu sync.Mutex
	now := time.Now()
	l.fake.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	l.fake.SetTokenTTLCap(time.Minute)
	l.fake.ExpireTokens()
	snapshot(t, c, nil) // gets a token that the fake kills after a minute
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	snapshot(t, c, nil)
}

func TestRequiredKeyNotPropagatedIsRetried(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	l.fake.NotFoundUntil(secondaryMAC+"/device-number", 3)
	inst := waited(t, newClient(t, l), nil)
	if len(inst.Problems) != 0 {
		t.Fatalf("problems after propagation: %v", inst.Problems)
	}
	if e := findENI(t, inst, secondaryMAC); e.DeviceNumber != 1 {
		t.Errorf("device-number = %d", e.DeviceNumber)
	}
}

func TestStillNotPropagatedAtTheDeadlineIsAProblemNotAnError(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	l.fake.NotFoundUntil(secondaryMAC+"/device-number", 1_000_000)
	c := newClient(t, l, func(o *imds.Options) { o.PropagationTimeout = 100 * time.Millisecond })
	inst := waited(t, c, nil)
	want := []core.ENIProblem{{MAC: secondaryMAC, Kind: core.ProblemNotPropagated,
		Reason: secondaryMAC + ": device-number is not in IMDS yet"}}
	if diff := cmp.Diff(want, inst.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{primaryMAC}, macs(inst)); diff != "" {
		t.Errorf("the propagated ENI must still be there (-want +got):\n%s", diff)
	}

	// A context deadline shorter than PropagationTimeout ends the wait, not the snapshot.
	c = newClient(t, l, func(o *imds.Options) { o.Timeout = 50 * time.Millisecond; o.PropagationTimeout = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	inst, err := c.Waiting().Snapshot(ctx, nil)
	if err != nil || len(inst.Problems) != 1 {
		t.Errorf("Snapshot with a deadline: %v, problems %v", err, inst.Problems)
	}
}

func TestOptionalKeyListedButMissingIsWaitedFor(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	l.fake.NotFoundUntil(secondaryMAC+"/ipv6s", 2)
	inst := waited(t, newClient(t, l), nil)
	if e := findENI(t, inst, secondaryMAC); len(e.IPv6s) != 1 {
		t.Errorf("ipv6s after propagation: %v", e.IPv6s)
	}

	l.fake.NotFoundUntil(secondaryMAC+"/ipv6s", 1_000_000)
	l.fake.NotFoundUntil(secondaryMAC+"/ipv4-prefix", 1_000_000)
	inst = waited(t, newClient(t, l, func(o *imds.Options) { o.PropagationTimeout = 50 * time.Millisecond }), nil)
	want := []core.ENIProblem{{MAC: secondaryMAC, Kind: core.ProblemNotPropagated,
		Reason: secondaryMAC + ": IMDS lists ipv6s, ipv4-prefix but answers 404 for it"}}
	if diff := cmp.Diff(want, inst.Problems); diff != "" {
		t.Errorf("an ENI without its listed ipv6s must not be planned (-want +got):\n%s", diff)
	}
}

func TestSecondaryOnDeviceZeroIsReadAgain(t *testing.T) {
	var reads atomic.Int32
	var l *lab
	l = startFake(t, "imds-dual-stack.json", func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// IMDS says 0 on the first read and the real device number on the second.
			if strings.HasSuffix(r.URL.Path, secondaryMAC+"/device-number") && reads.Add(1) == 2 {
				l.fake.Update(func(sc *scenario.Scenario) {
					sc.Interfaces[secondaryMAC]["device-number"] = scenario.Value{"1"}
				})
			}
			next.ServeHTTP(w, r)
		})
	})
	l.fake.Update(func(sc *scenario.Scenario) { sc.Interfaces[secondaryMAC]["device-number"] = scenario.Value{"0"} })
	inst := waited(t, newClient(t, l), nil)
	if e := findENI(t, inst, secondaryMAC); e.DeviceNumber != 1 || len(inst.Problems) != 0 {
		t.Errorf("device-number = %d, problems %v", e.DeviceNumber, inst.Problems)
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("device-number read %d times, want 2", n)
	}
}

func TestServerErrorsAndThrottlingAreRetried(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*fakeimds.Server)
		extra  int64
	}{
		{"500 twice", func(f *fakeimds.Server) { f.FailNext(2, http.StatusInternalServerError) }, 2},
		{"503 three times", func(f *fakeimds.Server) { f.FailNext(3, http.StatusServiceUnavailable) }, 3},
		{"throttled three times", func(f *fakeimds.Server) { f.Throttle(3) }, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := startFake(t, "imds-dual-stack.json")
			c := newClient(t, l)
			want := snapshot(t, c, nil)
			tt.inject(l.fake)
			before := c.Requests()
			got := snapshot(t, c, nil)
			if diff := cmp.Diff(want, got, netipComparers); diff != "" {
				t.Errorf("snapshot after retries differs:\n%s", diff)
			}
			if n := c.Requests() - before; n != 19+tt.extra {
				t.Errorf("%d requests, want 19 + %d retries", n, tt.extra)
			}
		})
	}
}

// TestFailuresAreErrorsNeverEmptyLists: whatever goes wrong, Snapshot returns an error and the
// zero Instance; a caller that only replaces its snapshot on success keeps the previous one.
func TestFailuresAreErrorsNeverEmptyLists(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*fakeimds.Server)
		opts   func(*imds.Options)
		check  func(t *testing.T, err error)
	}{
		{"5xx after all retries", func(f *fakeimds.Server) { f.FailNext(1000, http.StatusInternalServerError) }, nil,
			func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "StatusCode: 500") {
					t.Errorf("error does not say 500: %v", err)
				}
			}},
		{"timeout", func(f *fakeimds.Server) { f.SetDelay(time.Hour) },
			func(o *imds.Options) { o.Timeout = 50 * time.Millisecond; o.MaxAttempts = 2 },
			func(t *testing.T, err error) {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("error is not a timeout: %v", err)
				}
			}},
		{"connection dropped", func(f *fakeimds.Server) { f.SetDown(true) }, nil, nil},
		{"401 even after a new token", func(f *fakeimds.Server) { f.FailNext(1000, http.StatusUnauthorized) }, nil,
			func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "StatusCode: 401") {
					t.Errorf("error does not say 401: %v", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := startFake(t, "imds-dual-stack.json")
			var edits []func(*imds.Options)
			if tt.opts != nil {
				edits = append(edits, tt.opts)
			}
			c := newClient(t, l, edits...)
			last := snapshot(t, c, nil) // what the daemon holds

			tt.inject(l.fake)
			// A secondary IP was removed at the same time: a failed read must not look like it.
			l.fake.Update(func(sc *scenario.Scenario) { sc.Interfaces[secondaryMAC]["local-ipv4s"] = scenario.Value{"10.0.1.6"} })
			for _, reuse := range []*core.Instance{nil, &last} {
				got, err := c.Snapshot(context.Background(), reuse)
				if err == nil {
					t.Fatalf("reuse=%v: no error, got %v", reuse != nil, macs(got))
				}
				if diff := cmp.Diff(core.Instance{}, got, netipComparers); diff != "" {
					t.Errorf("on error the Instance must be the zero value (-want +got):\n%s", diff)
				}
				if !strings.Contains(err.Error(), "imds: GET meta-data/") {
					t.Errorf("error does not name the path: %v", err)
				}
				if tt.check != nil {
					tt.check(t, err)
				}
				if snap, err := c.Snapshot(context.Background(), reuse); err == nil {
					last = snap // the daemon's pattern: replace only on success
				}
			}
			if e := findENI(t, last, secondaryMAC); len(e.LocalIPv4s) != 2 {
				t.Errorf("the previous snapshot was lost: %v", e.LocalIPv4s)
			}
		})
	}
}

// TestTokenNotFoundIsNotAnAbsentKey: a 404 to the token PUT (no IMDSv2 here) must not be read
// as "every key is absent".
func TestTokenNotFoundIsNotAnAbsentKey(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	l.fake.FailNext(1000, http.StatusNotFound)
	got, err := newClient(t, l).Snapshot(context.Background(), nil)
	if err == nil {
		t.Fatalf("no error; got ENIs %v problems %v", macs(got), got.Problems)
	}
	if !strings.Contains(err.Error(), "API token") {
		t.Errorf("error should blame the token: %v", err)
	}
}

func TestUserAgent(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	snapshot(t, newClient(t, l), nil)
	if ua := l.fake.LastUserAgent(); !strings.Contains(ua, "ec2-net-utils/1.2.3-test") {
		t.Errorf("User-Agent %q does not carry ec2-net-utils/<version>", ua)
	}
}

// TestRequestCounts documents what a refresh costs, with and without reuse of the previous
// snapshot, for the dual-stack scenario (an IPv4 primary with 5 keys and a dual-stack secondary
// with 10).
func TestRequestCounts(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	c := newClient(t, l)
	count := func(reuse *core.Instance) (core.Instance, int64) {
		t.Helper()
		before, fakeBefore := c.Requests(), l.fake.Requests()
		inst := snapshot(t, c, reuse)
		n := c.Requests() - before
		if fn := l.fake.Requests() - fakeBefore; fn != n {
			t.Errorf("client counted %d requests, the fake %d", n, fn)
		}
		return inst, n
	}

	full, n := count(nil)
	if n != 20 { // token + mac + macs/ + 2 listings + 5 + 10 keys
		t.Errorf("first snapshot: %d requests, want 20", n)
	}
	if _, n = count(nil); n != 19 {
		t.Errorf("refresh without reuse: %d requests, want 19", n)
	}
	reused, n := count(&full)
	if n != 6 { // primary local-ipv4s, ipv4-prefix; secondary the same + ipv6s, ipv6-prefix (refresh.go)
		t.Errorf("refresh with reuse: %d requests, want 6", n)
	}
	if diff := cmp.Diff(full, reused, netipComparers); diff != "" {
		t.Errorf("reuse changed the snapshot (-full +reused):\n%s", diff)
	}

	// What the plan depends on is still read: a new secondary IP. A new VPC CIDR block (which
	// nothing planned uses) waits for a read without reuse.
	l.fake.Update(func(sc *scenario.Scenario) {
		sc.Interfaces[secondaryMAC]["local-ipv4s"] = scenario.Value{"10.0.1.6", "10.0.1.7", "10.0.1.8"}
		sc.Interfaces[secondaryMAC]["vpc-ipv4-cidr-blocks"] = scenario.Value{"10.0.0.0/16", "100.64.0.0/16"}
	})
	changed, _ := count(&full)
	if e := findENI(t, changed, secondaryMAC); len(e.LocalIPv4s) != 3 || len(e.VPCIPv4) != 1 {
		t.Errorf("with reuse: local-ipv4s %v (want the new one), vpc %v (want the reused one)", e.LocalIPv4s, e.VPCIPv4)
	}
	fresh, _ := count(nil)
	if e := findENI(t, fresh, secondaryMAC); len(e.VPCIPv4) != 2 {
		t.Errorf("read without reuse missed the new VPC CIDR block: %v", e.VPCIPv4)
	}
}

func TestENIDetachedWhileBeingRead(t *testing.T) {
	var l *lab
	l = startFake(t, "imds-dual-stack.json", func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if strings.HasSuffix(r.URL.Path, "/macs/") { // detached right after the listing
				l.fake.Update(func(sc *scenario.Scenario) { delete(sc.Interfaces, secondaryMAC) })
			}
		})
	})
	inst := snapshot(t, newClient(t, l), nil)
	if diff := cmp.Diff([]string{primaryMAC}, macs(inst)); diff != "" || len(inst.Problems) != 0 {
		t.Errorf("ENIs (-want +got):\n%s\nproblems %v", diff, inst.Problems)
	}
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	for _, ep := range []string{"169.254.169.254", "ftp://169.254.169.254", "http://", "http://[fd00:ec2::254"} {
		if _, err := imds.New(imds.Options{Endpoint: ep}); err == nil {
			t.Errorf("endpoint %q accepted", ep)
		}
	}
}

func TestConnectionRefusedIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more
	c := newClient(t, &lab{url: url})
	got, err := c.Snapshot(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Snapshot = %v, %v; want a connection refused error", macs(got), err)
	}
	if n := c.Requests(); n != 4 {
		t.Errorf("%d attempts, want MaxAttempts (4): connection errors are retried", n)
	}
}

// TestRequestCountsMultiCard: three plain IPv4 ENIs with network-card: 2 + 7 per ENI without
// reuse, 2 per ENI with it.
func TestRequestCountsMultiCard(t *testing.T) {
	l := startFake(t, "imds-multi-card.json")
	c := newClient(t, l)
	full := snapshot(t, c, nil) // includes the token PUT
	before := c.Requests()
	snapshot(t, c, nil)
	if n := c.Requests() - before; n != 2+3*7 {
		t.Errorf("without reuse: %d requests, want %d", n, 2+3*7)
	}
	before = c.Requests()
	reused := snapshot(t, c, &full)
	if n := c.Requests() - before; n != 3*2 {
		t.Errorf("with reuse: %d requests, want %d", n, 3*2)
	}
	if diff := cmp.Diff(full, reused, netipComparers); diff != "" {
		t.Errorf("reuse changed the snapshot:\n%s", diff)
	}
}

// An ENI that never completes is waited for once. Later reads (a refresh, or a full read for
// another attach) return at once with it still a problem, so one broken ENI cannot stall the
// daemon for PropagationTimeout on every pass. The test counts reads of the missing key instead
// of timing the reads: the first read must poll it again after its first 404 (it waited), and a
// later read must fetch it at most once (it did not wait). The latter also proves the first wait
// ran until PropagationTimeout: had it given up early, the ENI would still be young and the next
// waiting read would poll it for the rest of the timeout.
func TestANeverPropagatingENIIsWaitedForOnlyOnce(t *testing.T) {
	gets := &getCounter{n: map[string]int{}}
	l := startFake(t, "imds-dual-stack.json", gets.wrap)
	l.fake.NotFoundUntil(secondaryMAC+"/device-number", 1_000_000)
	c := newClient(t, l, func(o *imds.Options) { o.PropagationTimeout = 500 * time.Millisecond })
	key := "/latest/meta-data/network/interfaces/macs/" + secondaryMAC + "/device-number"

	first := waited(t, c, nil)
	if n := gets.counts()[key]; n < 2 || !onlyNotPropagated(first.Problems, secondaryMAC) {
		t.Fatalf("first read fetched %s %d times with problems %v; want it polled after the first 404 and kept as not propagated",
			key, n, first.Problems)
	}
	for _, reuse := range []*core.Instance{nil, &first} {
		before := gets.counts()[key]
		inst := waited(t, c, reuse)
		if n := gets.counts()[key] - before; n > 1 || !onlyNotPropagated(inst.Problems, secondaryMAC) {
			t.Errorf("read (reuse=%v) fetched %s %d times, problems %v; want at most once and the problem kept",
				reuse != nil, key, n, inst.Problems)
		}
	}
}

// onlyNotPropagated says whether problems is exactly one "not propagated" problem, about mac.
func onlyNotPropagated(problems []core.ENIProblem, mac string) bool {
	return len(problems) == 1 && problems[0].MAC == mac && problems[0].Kind == core.ProblemNotPropagated
}

// After an outage a single transient error is still retried: the SDK's retry quota would be
// empty by then (15 failed reads spend 630 of its 500 tokens) and fail the read outright.
func TestRetriesStillHappenAfterAnOutage(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	c := newClient(t, l, func(o *imds.Options) { o.PropagationTimeout = 0 })
	full := snapshot(t, c, nil)
	l.fake.FailNext(1_000_000, 503)
	for range 15 {
		if _, err := c.Snapshot(context.Background(), &full); err == nil {
			t.Fatal("read succeeded during the outage")
		}
	}
	l.fake.FailNext(1, 503) // the outage is over but for one last 503
	if _, err := c.Snapshot(context.Background(), &full); err != nil {
		t.Errorf("one 503 after an outage failed the read: %v", err)
	}
}

// A refresh reads the known ENIs without listing macs/; one that was detached meanwhile (its
// directory answers 404) is dropped, not an error.
func TestRefreshDropsAKnownENIThatWasDetached(t *testing.T) {
	l := startFake(t, "imds-dual-stack.json")
	c := newClient(t, l)
	full := snapshot(t, c, nil)
	l.fake.Update(func(sc *scenario.Scenario) { delete(sc.Interfaces, secondaryMAC) })
	inst := snapshot(t, c, &full)
	if diff := cmp.Diff([]string{primaryMAC}, macs(inst)); diff != "" || len(inst.Problems) != 0 {
		t.Errorf("ENIs (-want +got):\n%s\nproblems %v", diff, inst.Problems)
	}
}
