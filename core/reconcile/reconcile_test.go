package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
)

// fakeIMDS answers with the queued snapshots or errors, then repeats the last one.
type fakeIMDS struct {
	mu      sync.Mutex
	answers []answer
	calls   []*core.Instance // the reuse argument of each Snapshot call
	looks   int              // Look calls
}

type answer struct {
	inst core.Instance
	err  error
}

func (f *fakeIMDS) Snapshot(_ context.Context, reuse *core.Instance) (core.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, reuse)
	a := f.answers[0]
	if len(f.answers) > 1 {
		f.answers = f.answers[1:]
	}
	return a.inst, a.err
}

// Look returns the answer the next Snapshot would give, without using it up.
func (f *fakeIMDS) Look(context.Context) (core.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.looks++
	return f.answers[0].inst, f.answers[0].err
}

type fakeKernel struct {
	mu        sync.Mutex
	links     []core.Link
	ensured   int  // EnsureRules calls
	rulesKept bool // EnsureRules finds every rule in place; otherwise it pretends one was missing
	deleted   []core.Rule
	deleteErr error
	altnames  map[string][]string
	// missingRoutes and missingAddrs are what someone deleted: EnsureRoutes and EnsureAddresses
	// put back those that are wanted, recording them in wroteRoutes and wroteAddrs as written
	// (attributes included). Everything else wanted is in place.
	missingRoutes []core.Route
	missingAddrs  []netip.Prefix
	// rules are what Rules lists (the kernel's rules in a priority range).
	rules       []core.Rule
	wroteRoutes []core.Route
	wroteAddrs  []netip.Prefix
	// raRouters are the routers learned from RAs, by link index: a route with GatewayFromRA goes
	// through the link's, and waits (netlinkx.ErrNoRARouter) while it has none, as netlinkx does.
	raRouters map[int]netip.Addr
}

func (k *fakeKernel) EnsureRoutes(l core.Link, want []core.Route) ([]core.Route, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !slices.ContainsFunc(k.links, func(x core.Link) bool { return x.Index == l.Index }) {
		return nil, errors.New("no such link")
	}
	var added []core.Route
	var errs []error
	for _, r := range want {
		gw := r.Gateway
		if r.GatewayFromRA {
			if gw = k.raRouters[l.Index]; !gw.IsValid() {
				errs = append(errs, fmt.Errorf("route %s: %s: %w", r.Destination, l.Name, netlinkx.ErrNoRARouter))
				continue
			}
		}
		i := slices.IndexFunc(k.missingRoutes, func(m core.Route) bool {
			return m.Table == r.Table && m.Destination == r.Destination && m.Gateway == gw
		})
		if i < 0 {
			continue
		}
		k.missingRoutes = slices.Delete(k.missingRoutes, i, i+1)
		added = append(added, r)
	}
	k.wroteRoutes = append(k.wroteRoutes, added...)
	return added, errors.Join(errs...)
}

func (k *fakeKernel) EnsureAddresses(l core.Link, want []netip.Prefix) ([]netip.Prefix, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !slices.ContainsFunc(k.links, func(x core.Link) bool { return x.Index == l.Index }) {
		return nil, errors.New("no such link")
	}
	var added []netip.Prefix
	for _, p := range want {
		if i := slices.Index(k.missingAddrs, p); i >= 0 {
			k.missingAddrs = slices.Delete(k.missingAddrs, i, i+1)
			added = append(added, p)
		}
	}
	k.wroteAddrs = append(k.wroteAddrs, added...)
	return added, nil
}

// remove makes routes and addresses go missing, as `ip route del` and `ip addr del` would.
func (k *fakeKernel) remove(routes []core.Route, addrs ...netip.Prefix) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.missingRoutes = append(k.missingRoutes, routes...)
	k.missingAddrs = append(k.missingAddrs, addrs...)
}

func (k *fakeKernel) written() ([]core.Route, []netip.Prefix) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.wroteRoutes), slices.Clone(k.wroteAddrs)
}

func (k *fakeKernel) Links() ([]core.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.links), nil
}

func (k *fakeKernel) EnsureAltnames(l core.Link, names []string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.altnames == nil {
		k.altnames = map[string][]string{}
	}
	var added []string
	for _, n := range names {
		if !slices.Contains(k.altnames[l.Name], n) {
			k.altnames[l.Name] = append(k.altnames[l.Name], n)
			added = append(added, n)
		}
	}
	return added, nil
}

func (k *fakeKernel) EnsureRules(want []core.Rule) ([]core.Rule, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ensured++
	if k.rulesKept {
		return nil, nil
	}
	return want[:1], nil // pretend one was missing, so restores are logged and counted
}

func (k *fakeKernel) Rules(lo, hi int) ([]core.Rule, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []core.Rule
	for _, r := range k.rules {
		if r.Priority >= lo && r.Priority <= hi {
			out = append(out, r)
		}
	}
	return out, nil
}

func (k *fakeKernel) DeleteRules(rules []core.Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.deleteErr != nil {
		return k.deleteErr
	}
	k.deleted = append(k.deleted, rules...)
	return nil
}

func (k *fakeKernel) ensures() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ensured
}

// fakeBackend configures every planned interface, except those outcomes names: their outcome
// (and reason) is taken from there.
type fakeBackend struct {
	plans    []core.Plan
	outcomes map[string]core.InterfaceReport // by interface name
	changes  core.Changes                    // reported by every Apply
}

func (b *fakeBackend) Name() string { return "fake" }
func (b *fakeBackend) Apply(_ context.Context, p core.Plan, _ []core.Link) (core.Report, error) {
	b.plans = append(b.plans, p)
	rep := core.Report{Changes: b.changes}
	var errs []error
	for _, ifc := range p.Interfaces {
		ir, ok := b.outcomes[ifc.Name]
		if !ok {
			ir.Outcome = core.Configured
		}
		ir.Name, ir.MAC = ifc.Name, ifc.MAC
		if ir.Outcome == core.Failed {
			errs = append(errs, ir.Err)
		}
		rep.Interfaces = append(rep.Interfaces, ir)
	}
	return rep, errors.Join(errs...)
}

func twoENIs() core.Instance {
	return core.Instance{PrimaryMAC: "02:00:00:00:05:05", ENIs: []core.ENI{
		{MAC: "02:00:00:00:05:05", InterfaceID: "eni-5", LocalIPv4s: []netip.Addr{netip.MustParseAddr("10.0.0.10")},
			SubnetIPv4: netip.MustParsePrefix("10.0.0.0/24")},
		{MAC: "02:00:00:00:06:06", InterfaceID: "eni-6", DeviceNumber: 1, LocalIPv4s: []netip.Addr{netip.MustParseAddr("10.0.1.10")},
			SubnetIPv4: netip.MustParsePrefix("10.0.1.0/24")},
	}}
}

func twoLinks() []core.Link {
	return []core.Link{
		{Name: "ens5", Index: 2, MAC: "02:00:00:00:05:05", Driver: "ena"},
		{Name: "ens6", Index: 3, MAC: "02:00:00:00:06:06", Driver: "ena"},
	}
}

func TestFirstIMDSFailureConfiguresNothing(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{err: errors.New("connection refused")}}}
	backend := &fakeBackend{}
	r := New(imds, &fakeKernel{links: twoLinks()}, backend, core.DefaultPlanOptions(), nil)
	if _, err := r.Once(context.Background(), Pass{Reason: "start", Fetch: true}); err == nil {
		t.Fatal("Once succeeded without any IMDS snapshot")
	}
	if len(backend.plans) != 0 {
		t.Errorf("backend applied %d plan(s) without a snapshot; an empty plan would remove everything", len(backend.plans))
	}
}

func TestIMDSFailureKeepsTheLastKnownGoodPlan(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}, {err: errors.New("timeout")}}}
	backend := &fakeBackend{}
	r := New(imds, &fakeKernel{links: twoLinks()}, backend, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	if _, err := r.Once(ctx, Pass{Reason: "start", Fetch: true}); err != nil {
		t.Fatal(err)
	}
	res, err := r.Once(ctx, Pass{Reason: "refresh", Fetch: true})
	if err == nil || !res.IMDSUnreachable {
		t.Fatalf("refresh with IMDS down: err=%v unreachable=%v, want both", err, res.IMDSUnreachable)
	}
	last := backend.plans[len(backend.plans)-1]
	if len(last.Interfaces) != 2 {
		t.Errorf("plan during the outage has %d interfaces, want the 2 of the last snapshot", len(last.Interfaces))
	}
}

func TestRefreshReusesStableKeysAndFullPassDoesNot(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	r := New(imds, &fakeKernel{links: twoLinks()}, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	for _, p := range []Pass{{Fetch: true, Full: true}, {Fetch: true}, {Fetch: true, Full: true}} {
		if _, err := r.Once(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if imds.calls[0] != nil || imds.calls[1] == nil || imds.calls[2] != nil {
		t.Errorf("reuse per call = %v, want nil, previous snapshot, nil", imds.calls)
	}
}

func TestDetachRemovesTheDetachedENIsRulesOnly(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: twoLinks()}
	r := New(imds, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	if _, err := r.Once(ctx, Pass{Fetch: true}); err != nil {
		t.Fatal(err)
	}
	kernel.links = kernel.links[:1] // ens6 detached
	if _, err := r.Once(ctx, Pass{Reason: "link removed ens6"}); err != nil {
		t.Fatal(err)
	}
	want := []core.Rule{{Family: core.IPv4, From: netip.MustParsePrefix("10.0.1.10/32"), Table: 10001, Priority: 10001}}
	if !slices.Equal(kernel.deleted, want) {
		t.Errorf("deleted %v, want %v", kernel.deleted, want)
	}
	if len(imds.calls) != 1 {
		t.Errorf("detach asked IMDS %d more time(s); it must plan from the last snapshot", len(imds.calls)-1)
	}
}

func TestRenamedENIKeepsItsRules(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: twoLinks()}
	r := New(imds, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	if _, err := r.Once(ctx, Pass{Fetch: true}); err != nil {
		t.Fatal(err)
	}
	// Detached and attached again under a new name and index: the table is in use again.
	kernel.links = []core.Link{twoLinks()[0], {Name: "ens7", Index: 9, MAC: "02:00:00:00:06:06", Driver: "ena"}}
	if _, err := r.Once(ctx, Pass{Fetch: true}); err != nil {
		t.Fatal(err)
	}
	if len(kernel.deleted) != 0 {
		t.Errorf("deleted %v although the ENI is back as ens7", kernel.deleted)
	}
}

func TestUnchangedRefreshSkipsTheBackendButFullPassesApply(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: twoLinks()}
	backend := &fakeBackend{}
	r := New(imds, kernel, backend, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	for _, p := range []Pass{{Fetch: true, Full: true}, {Fetch: true}, {Fetch: true}} {
		if _, err := r.Once(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if len(backend.plans) != 1 {
		t.Errorf("backend applied %d times for one start and two unchanged refreshes, want 1", len(backend.plans))
	}
	if _, err := r.Once(ctx, Pass{Fetch: true, Full: true}); err != nil {
		t.Fatal(err)
	}
	kernel.links = kernel.links[:1]
	if _, err := r.Once(ctx, Pass{Reason: "link removed"}); err != nil {
		t.Fatal(err)
	}
	if len(backend.plans) != 3 {
		t.Errorf("backend applied %d times, want 3: a full pass and a link change always apply", len(backend.plans))
	}
}

func TestFailedDeleteOfDetachedRulesIsRetried(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: twoLinks()}
	r := New(imds, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	if _, err := r.Once(ctx, Pass{Fetch: true}); err != nil {
		t.Fatal(err)
	}
	kernel.links = kernel.links[:1]
	kernel.deleteErr = errors.New("netlink busy")
	if _, err := r.Once(ctx, Pass{Reason: "link removed ens6"}); err == nil {
		t.Fatal("a failed delete was not reported")
	}
	kernel.deleteErr = nil
	if _, err := r.Once(ctx, Pass{Reason: "refresh", Fetch: true}); err != nil {
		t.Fatal(err)
	}
	if len(kernel.deleted) != 1 || kernel.deleted[0].From != netip.MustParsePrefix("10.0.1.10/32") {
		t.Errorf("deleted %v, want ens6's rule deleted on the retry", kernel.deleted)
	}
}

func TestAnotherENIInTheSameSlotDoesNotInheritTheOldRules(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	kernel := &fakeKernel{links: twoLinks()}
	r := New(imds, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	if _, err := r.Once(ctx, Pass{Fetch: true}); err != nil {
		t.Fatal(err)
	}
	// ens6 detached; a different ENI is attached as device 1 (same table) with another address.
	next := twoENIs()
	next.ENIs[1].MAC = "02:00:00:00:07:07"
	next.ENIs[1].LocalIPv4s = []netip.Addr{netip.MustParseAddr("10.0.1.99")}
	imds.answers = []answer{{inst: next}}
	kernel.links = []core.Link{twoLinks()[0], {Name: "ens7", Index: 7, MAC: "02:00:00:00:07:07", Driver: "ena"}}
	if _, err := r.Once(ctx, Pass{Fetch: true, Full: true}); err != nil {
		t.Fatal(err)
	}
	want := []core.Rule{{Family: core.IPv4, From: netip.MustParsePrefix("10.0.1.10/32"), Table: 10001, Priority: 10001}}
	if !slices.Equal(kernel.deleted, want) {
		t.Errorf("deleted %v, want the departed ENI's rule %v", kernel.deleted, want)
	}
}

func TestOnlyLinksThatMayBeENIsWakeTheLoop(t *testing.T) {
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}}}
	r := New(imds, &fakeKernel{links: twoLinks()}, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	triggers := make(chan Trigger)
	passes := make(chan Pass, 8)
	ready := make(chan struct{})
	go func() {
		_ = r.Run(ctx, triggers, LoopOptions{RefreshInterval: time.Hour, Ready: func(bool) { close(ready) },
			OnPass: func(p Pass, _ Result, _ error) { passes <- p }})
	}()
	<-ready
	<-passes // start
	triggers <- Trigger{Kind: LinkAdded, Link: core.Link{Name: "veth1a2b", Index: 40, MAC: "6a:00:00:00:00:01", Driver: "veth", Kind: "veth"}}
	triggers <- Trigger{Kind: LinkRemoved, Link: core.Link{Name: "veth1a2b", Index: 40, MAC: "6a:00:00:00:00:01", Driver: "veth", Kind: "veth"}}
	triggers <- Trigger{Kind: LinkAdded, Link: core.Link{Name: "ens9", Index: 41, MAC: "02:00:00:00:09:09", Driver: "ena"}}
	p := <-passes
	if p.Reason != "link added ens9" || !p.Full {
		t.Errorf("pass %+v, want a full pass for ens9 only (the container veth must not wake the loop)", p)
	}
}
