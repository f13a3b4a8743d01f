package reconcile

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// fakeClock is a Clock whose time moves only when a test says so. The loop runs on the test's
// goroutine (harness.step), so no locking is needed.
type fakeClock struct {
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at   time.Time
	c    chan time.Time
	done bool // fired or stopped
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	was := !t.done
	t.done = true
	select {
	case <-t.c:
	default:
	}
	return was
}

// due returns the armed timer that fires first, if it fires by end.
func (c *fakeClock) due(end time.Time) *fakeTimer {
	var first *fakeTimer
	for _, t := range c.timers {
		if !t.done && !t.at.After(end) && (first == nil || t.at.Before(first.at)) {
			first = t
		}
	}
	return first
}

// harness drives a loop step by step on a fake clock.
type harness struct {
	t        *testing.T
	ctx      context.Context
	l        *loop
	clk      *fakeClock
	triggers chan Trigger
	passes   []Pass
	ready    []bool
}

func newHarness(t *testing.T, r *Reconciler, o LoopOptions) *harness {
	h := &harness{t: t, ctx: context.Background(), clk: &fakeClock{now: time.Unix(1e9, 0)}, triggers: make(chan Trigger, 1)}
	o.Clock = h.clk
	o.OnPass = func(p Pass, _ Result, _ error) { h.passes = append(h.passes, p) }
	o.Ready = func(ok bool) { h.ready = append(h.ready, ok) }
	h.l = newLoop(r, h.triggers, o)
	h.l.start(h.ctx)
	t.Cleanup(h.l.stop)
	return h
}

// send hands the loop one event and lets it handle it.
func (h *harness) send(t Trigger) {
	h.triggers <- t
	h.l.step(h.ctx)
}

// advance moves the clock by d, firing the timers due on the way one at a time, in order, each
// handled by the loop before the next fires.
func (h *harness) advance(d time.Duration) {
	end := h.clk.now.Add(d)
	for t := h.clk.due(end); t != nil; t = h.clk.due(end) {
		h.clk.now = t.at
		t.done = true
		t.c <- t.at
		h.l.step(h.ctx)
	}
	h.clk.now = end
}

var ours = Trigger{Kind: RuleRemoved, Rule: core.Rule{Priority: 10001, Table: 10001}}

func TestADeletedRuleComesBackWithinASecond(t *testing.T) {
	// Every rule in place at start: the start pass checks them and restores nothing.
	kernel := &fakeKernel{links: twoLinks(), rulesKept: true}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: time.Hour, RuleRestoreInterval: 5 * time.Second})
	kernel.ensured = 0
	h.send(Trigger{Kind: RuleRemoved, Rule: core.Rule{Priority: 1536, Table: 10001}})
	h.advance(time.Second)
	if n := kernel.ensures(); n != 0 {
		t.Fatalf("a foreign rule's removal caused %d restore(s)", n)
	}
	// Deleted one `ip rule del` at a time, a few hundred ms apart: each comes back at once.
	kernel.rulesKept = false // from now on each restore finds a rule missing, and puts it back
	for i := 1; i <= restoreBurst; i++ {
		h.send(ours)
		h.send(ours) // within the same settle window: one restore
		h.advance(restoreSettle - time.Millisecond)
		if n := kernel.ensures(); n != i-1 {
			t.Fatalf("deletion %d: restored before the settle time (a manager re-adding it must win)", i)
		}
		h.advance(time.Millisecond)
		if n := kernel.ensures(); n != i {
			t.Fatalf("deletion %d: %d restores %v after it, want %d", i, n, restoreSettle, i)
		}
	}
	// A fight: once the burst is used up, one restore per RuleRestoreInterval.
	h.send(ours)
	h.advance(3 * time.Second)
	if n := kernel.ensures(); n != restoreBurst {
		t.Errorf("restore %d came within 3s of the burst; want it rate-limited to one per 5s", n)
	}
	h.advance(2 * time.Second)
	if n := kernel.ensures(); n != restoreBurst+1 {
		t.Errorf("%d restores, want %d: the rate-limited restore never came", n, restoreBurst+1)
	}
}

// Routes of our ENI tables and our secondary addresses are restored under the same limit as
// rules: each deletion at once while the burst lasts, then one restore per RuleRestoreInterval,
// so a manager or script that keeps deleting them cannot make us spin.
func TestDeletedRoutesAndAddressesComeBackInABurstThenRateLimited(t *testing.T) {
	ens6 := twoLinks()[1]
	for _, tc := range []struct {
		name     string
		delete   func(*fakeKernel)
		event    Trigger
		restored func(*fakeKernel) int
	}{
		{
			name:   "route",
			delete: func(k *fakeKernel) { k.remove([]core.Route{ens6Default}) },
			event:  Trigger{Kind: RouteRemoved, Link: ens6, Route: ens6Default},
			restored: func(k *fakeKernel) int {
				routes, _ := k.written()
				return len(routes)
			},
		},
		{
			name:   "address",
			delete: func(k *fakeKernel) { k.remove(nil, ens6Second) },
			event:  Trigger{Kind: AddressRemoved, Link: ens6, Address: ens6Second},
			restored: func(k *fakeKernel) int {
				_, addrs := k.written()
				return len(addrs)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, kernel := newRestoreHarness(t)
			for i := 1; i <= restoreBurst; i++ {
				tc.delete(kernel)
				h.send(tc.event)
				h.send(tc.event) // within the same settle window: one restore
				h.advance(restoreSettle - time.Millisecond)
				if n := tc.restored(kernel); n != i-1 {
					t.Fatalf("deletion %d: restored before the settle time (a manager re-adding it must win)", i)
				}
				h.advance(time.Millisecond)
				if n := tc.restored(kernel); n != i {
					t.Fatalf("deletion %d: %d restored %v after it, want %d", i, n, restoreSettle, i)
				}
			}
			// A fight: once the burst is used up, one restore per RuleRestoreInterval.
			tc.delete(kernel)
			h.send(tc.event)
			h.advance(3 * time.Second)
			if n := tc.restored(kernel); n != restoreBurst {
				t.Errorf("restore %d came within 3s of the burst; want it rate-limited to one per 5s", n)
			}
			h.advance(2 * time.Second)
			if n := tc.restored(kernel); n != restoreBurst+1 {
				t.Errorf("%d restored, want %d: the rate-limited restore never came", n, restoreBurst+1)
			}
		})
	}
}

func TestAFullRefreshRestoresMissingRulesUnlessItChangedSomething(t *testing.T) {
	kernel := &fakeKernel{links: twoLinks()}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: 10 * time.Second, FullRefreshEvery: 2})
	atStart := kernel.ensures()
	h.advance(10 * time.Second) // refresh 1, not full: no rule dump
	if n := kernel.ensures() - atStart; n != 0 {
		t.Errorf("an ordinary refresh dumped rules %d time(s)", n)
	}
	h.advance(10 * time.Second) // refresh 2, full
	if n := kernel.ensures() - atStart; n != 1 {
		t.Errorf("a full refresh checked rules %d time(s), want 1", n)
	}
}

// A rule deleted while the daemon was stopped sends no event to the restarted daemon: its first
// pass restores it, unless that pass changed the manager's configuration (the manager is then
// still applying it, and will add the rule itself).
func TestStartRestoresRulesDeletedWhileTheDaemonWasStopped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		changes core.Changes
		want    int
	}{
		{"start changed nothing", core.Changes{}, 1},
		{"start wrote files", core.Changes{Written: []string{"70-ens6.network"}, Reloads: 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kernel := &fakeKernel{links: twoLinks()}
			backend := &fakeBackend{changes: tc.changes}
			r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, kernel, backend, core.DefaultPlanOptions(), nil)
			newHarness(t, r, LoopOptions{RefreshInterval: time.Hour})
			if n := kernel.ensures(); n != tc.want {
				t.Errorf("the start pass checked rules %d time(s), want %d", n, tc.want)
			}
		})
	}
}

func TestLinkEventsSettleIntoOnePass(t *testing.T) {
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, &fakeKernel{links: twoLinks()}, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: time.Hour})
	h.send(Trigger{Kind: LinkAdded, Link: core.Link{Name: "eth1", Index: 3, MAC: "02:00:00:00:06:06", Driver: "ena"}})
	h.send(Trigger{Kind: LinkRenamed, Link: core.Link{Name: "ens6", Index: 3, MAC: "02:00:00:00:06:06", Driver: "ena"}})
	h.send(Trigger{Kind: LinkAdded, Link: core.Link{Name: "veth9", Index: 9, MAC: "6a:00:00:00:00:09", Driver: "veth", Kind: "veth"}})
	h.advance(time.Second)
	want := []Pass{{Reason: "start", Fetch: true, Full: true}, {Reason: "link added eth1, link renamed ens6", Fetch: true, Full: true, Added: "02:00:00:00:06:06"}}
	if !slices.Equal(h.passes, want) {
		t.Errorf("passes %+v, want %+v", h.passes, want)
	}
	h.send(Trigger{Kind: LinkRemoved, Link: core.Link{Name: "ens9", Index: 12, MAC: "02:00:00:00:09:09", Driver: "ena"}})
	h.advance(time.Second)
	if len(h.passes) != 2 {
		t.Errorf("removal of a link that was never planned ran a pass: %+v", h.passes[2:])
	}
}

// On real EC2 the link of a hot-attached ENI often comes before IMDS lists its MAC (issue #11):
// the loop looks again with backoff, listing macs/ only, until IMDS lists it or PropagationTimeout
// passes; after that, every refresh lists macs/ too.
func TestALinkIMDSListsLateIsLookedForWithBackoff(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: twoLinks()}
	backend := &fakeBackend{}
	r := New(imds, kernel, backend, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: 10 * time.Second, PropagationTimeout: 30 * time.Second})
	kernel.links = threeLinks()
	h.send(Trigger{Kind: LinkAdded, Link: kernel.links[2]})
	h.advance(20 * time.Millisecond) // settle: the link-added pass, ens7 not listed
	h.advance(100*time.Millisecond + 200*time.Millisecond + 400*time.Millisecond)
	if got := len(h.passes); got != 5 || imds.looks != 3 || len(imds.calls) != 2 {
		t.Fatalf("%d passes, %d listings, %d snapshots; want start, link added and 3 looks (after 100, 200, 400 ms) that list macs/ only: %+v",
			got, imds.looks, len(imds.calls), h.passes)
	}
	imds.answers = []answer{{inst: threeENIs()}} // IMDS lists ens7
	h.advance(800 * time.Millisecond)
	if !r.Planned("02:00:00:00:07:07") {
		t.Fatal("ens7 not planned at the first look after IMDS listed it")
	}
	for i, reuse := range imds.calls {
		if reuse != nil {
			t.Errorf("read %d reused the snapshot while ens7 was unlisted", i)
		}
	}
	n := len(h.passes)
	h.advance(5 * time.Second)
	if len(h.passes) != n || h.l.again != nil {
		t.Errorf("still looking after ens7 was found: %+v", h.passes[n:])
	}
}

func TestLookingForAnUnlistedLinkStopsAfterThePropagationTimeout(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: threeLinks()} // ens7 is there from the start, never listed
	r := New(imds, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: time.Minute, PropagationTimeout: 30 * time.Second})
	h.advance(30 * time.Second)
	// 100+200+400+800 ms, then every second: 1.5 s + 28 looks, give or take the last.
	if looks := len(h.passes) - 1; looks < 25 || looks > 35 {
		t.Errorf("%d looks in 30s, want about 30 (backoff 100ms doubling to 1s)", looks)
	}
	h.advance(time.Second) // the look armed just before the timeout
	n := len(h.passes)
	h.advance(28 * time.Second)
	if len(h.passes) != n {
		t.Errorf("%d more looks after the propagation timeout", len(h.passes)-n)
	}
	calls, lists := len(imds.calls), imds.looks
	h.advance(time.Minute) // a refresh
	if len(imds.calls) != calls+1 || imds.looks != lists+1 {
		t.Error("the refresh after the propagation timeout did not list macs/ and read IMDS")
	}
}

func TestReadyAfterTheFirstPassThatReadIMDS(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{err: errors.New("500 Internal Server Error")}}}
	r := New(imds, &fakeKernel{links: twoLinks()}, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: 10 * time.Second})
	h.advance(2 * time.Second) // retries after 1s (and 2s later)
	if len(h.ready) != 0 {
		t.Fatalf("ready %v after a start IMDS did not answer", h.ready)
	}
	if len(h.passes) < 2 {
		t.Errorf("%d passes: the failed start is not retried before the refresh", len(h.passes))
	}
	imds.answers = []answer{{inst: twoENIs()}}
	h.advance(3 * time.Second)
	if !slices.Equal(h.ready, []bool{true}) {
		t.Errorf("ready %v, want [true] once IMDS answered", h.ready)
	}
	h.advance(time.Minute)
	if len(h.ready) != 1 {
		t.Errorf("ready called %d times", len(h.ready))
	}
}

func TestReadyIsBoundedWhenIMDSNeverAnswers(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{err: errors.New("connection refused")}}}
	r := New(imds, &fakeKernel{links: twoLinks()}, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: 10 * time.Second, ReadyTimeout: 30 * time.Second})
	h.advance(30*time.Second - time.Millisecond)
	if len(h.ready) != 0 {
		t.Fatalf("ready %v before the ready timeout", h.ready)
	}
	h.advance(time.Millisecond)
	if !slices.Equal(h.ready, []bool{false}) {
		t.Errorf("ready %v, want [false] at the ready timeout", h.ready)
	}
	// Retries back off to the refreshes: after 1, 3, 7, 15 s, then every 10 s; not a storm.
	if n := len(imds.calls); n > 8 {
		t.Errorf("%d IMDS reads in 30s without an answer, want at most 8", n)
	}
}

func TestADeferredInterfaceIsCompletedAtTheNextRefresh(t *testing.T) {
	backend := &fakeBackend{outcomes: map[string]core.InterfaceReport{"ens6": {Outcome: core.Deferred, Reason: "IPv6 router"}}}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, &fakeKernel{links: twoLinks()}, backend, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: 10 * time.Second})
	backend.outcomes = nil
	h.advance(10 * time.Second)
	if len(backend.plans) != 2 {
		t.Errorf("backend applied %d times by the first refresh, want 2: the deferred start pass is completed at the very next refresh", len(backend.plans))
	}
	h.advance(10 * time.Second)
	if len(backend.plans) != 2 {
		t.Errorf("backend applied %d times, want 2 (start, deferred; first refresh completes it; second skipped)", len(backend.plans))
	}
}

// A late RA (or a new router) gets the interface waiting for it applied within the settle time,
// not at the next refresh; a router event that changes nothing for a settled pass, or that is on
// a link the agent does not plan, costs no backend apply.
func TestARouterChangeAppliesWithinTheSettleTime(t *testing.T) {
	backend := &fakeBackend{outcomes: map[string]core.InterfaceReport{"ens6": {Outcome: core.Deferred, Reason: "RA"}}}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, &fakeKernel{links: twoLinks()}, backend, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: time.Hour, Settle: 20 * time.Millisecond})
	ens6 := twoLinks()[1]
	router := netip.MustParseAddr("fe80::1")
	applies := func() int { return len(backend.plans) }
	if applies() != 1 {
		t.Fatalf("%d applies at start, want 1", applies())
	}

	h.send(Trigger{Kind: RouterChanged, Link: core.Link{Name: "veth0", Index: 9, MAC: "02:99:00:00:00:09"}, Router: router})
	h.advance(time.Second)
	if applies() != 1 || len(h.passes) != 1 {
		t.Fatalf("a router on a link that is no ENI ran %d passes, %d applies", len(h.passes)-1, applies()-1)
	}

	// The RA arrives: ens6, deferred at start, is applied once the settle time has passed.
	delete(backend.outcomes, "ens6")
	h.send(Trigger{Kind: RouterChanged, Link: ens6, Router: router})
	h.advance(20 * time.Millisecond)
	if applies() != 2 {
		t.Fatalf("%d applies 20ms after the RA, want 2", applies())
	}
	if p := h.passes[len(h.passes)-1]; p.Fetch || p.Full {
		t.Errorf("router pass %+v reads IMDS or applies regardless; it needs neither", p)
	}

	// Settled with that router: the same router again is nothing, a new one is applied.
	h.send(Trigger{Kind: RouterChanged, Link: ens6, Router: router})
	h.advance(time.Second)
	if applies() != 2 {
		t.Errorf("the same router again caused an apply")
	}
	h.send(Trigger{Kind: RouterChanged, Link: ens6, Router: netip.MustParseAddr("fe80::2")})
	h.advance(20 * time.Millisecond)
	if applies() != 3 {
		t.Errorf("%d applies after the router changed, want 3", applies())
	}
	// The router goes away and comes back: nothing to do either time (the route through it stays).
	h.send(Trigger{Kind: RouterChanged, Link: ens6})
	h.send(Trigger{Kind: RouterChanged, Link: ens6, Router: netip.MustParseAddr("fe80::2")})
	h.advance(time.Second)
	if applies() != 3 {
		t.Errorf("%d applies after the router went and came back, want 3", applies())
	}
}

// The network manager came back from a restart running an ENI with less than the agent gave it:
// the next pass compares every ENI with the manager, without asking IMDS (nothing there changed).
func TestAManagerRestartComparesEveryENIWithoutReadingIMDS(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	backend := &fakeBackend{}
	r := New(imds, &fakeKernel{links: twoLinks()}, backend, core.DefaultPlanOptions(), nil)
	h := newHarness(t, r, LoopOptions{RefreshInterval: time.Hour, Settle: 20 * time.Millisecond})
	reads := len(imds.calls) + imds.looks
	h.send(Trigger{Kind: ManagerRestarted})
	h.advance(20 * time.Millisecond)
	if len(backend.plans) != 2 {
		t.Fatalf("backend applied %d times, want 2 (start, restart): the restart pass must not be skipped", len(backend.plans))
	}
	if want := (Pass{Reason: "network manager restarted", Full: true}); h.passes[len(h.passes)-1] != want {
		t.Errorf("restart pass %+v, want %+v", h.passes[len(h.passes)-1], want)
	}
	if n := len(imds.calls) + imds.looks - reads; n != 0 {
		t.Errorf("the restart pass read IMDS %d times", n)
	}
}
