package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// TriggerKind is what woke the daemon.
type TriggerKind int

const (
	// LinkAdded: a link appeared (attach, or moved into the netns).
	LinkAdded TriggerKind = iota
	// LinkRenamed: udev (or a person) renamed a link; its files must follow the new name.
	LinkRenamed
	// LinkRemoved: detach. Planned without asking IMDS, which may still list the ENI.
	LinkRemoved
	// RuleRemoved: someone deleted a rule; restored if it is one of ours.
	RuleRemoved
	// Resync: events may have been lost (netlink socket overflow); re-read everything.
	Resync
	// RouterChanged: a link's IPv6 RA router appeared, changed or went away (Router zero). The
	// ENI table's default route goes through it, so a backend waiting for it must apply now.
	RouterChanged
	// RouteRemoved: a route was deleted from a table; restored if it is one of our plan's.
	RouteRemoved
	// AddressRemoved: an address was removed from a link; restored if it is one of our
	// secondary addresses.
	AddressRemoved
	// ManagerRestarted: the network manager is back from a restart (core.RestartWatcher) and
	// may run the ENIs with less than the last pass gave them; every ENI is compared again.
	ManagerRestarted
)

// Trigger is one event for the loop.
type Trigger struct {
	Kind    TriggerKind
	Link    core.Link
	Rule    core.Rule
	Router  netip.Addr
	Route   core.Route   // RouteRemoved: the route as it was, attributes included
	Address netip.Prefix // AddressRemoved
}

// LoopOptions tune the daemon loop. Zero values take the defaults in their comments.
type LoopOptions struct {
	// RefreshInterval between IMDS refreshes (secondary IPs and prefixes have no event); 10s.
	RefreshInterval time.Duration
	// FullRefreshEvery: every Nth refresh re-reads the stable IMDS keys too; 30.
	FullRefreshEvery int
	// RuleRestoreInterval is the sustained rate of restores of deleted rules, routes and
	// addresses (one per interval, after a burst of restoreBurst), so an agent that keeps deleting
	// them cannot make us spin; 5s. The first restores are not delayed by it, and only a restore
	// that put something back counts.
	RuleRestoreInterval time.Duration
	// Settle coalesces a burst of link events (udev renames right after attach) into one pass; 20ms.
	Settle time.Duration
	// PropagationTimeout is how long a link with an ENI driver whose MAC IMDS does not list, or
	// an ENI with a link that IMDS has not finished propagating, is looked for with backoff
	// (imds.propagation_timeout); after that, at each refresh. 30s.
	PropagationTimeout time.Duration
	// ReadyTimeout bounds the wait for Ready: it is called after the first pass that could read
	// IMDS, or after ReadyTimeout without one, so boot is not held hostage by IMDS; 30s.
	ReadyTimeout time.Duration
	// Ready is called once (sd_notify READY=1); ok is false when it was called for ReadyTimeout.
	Ready func(ok bool)
	// OnPass, if set, sees every pass result (tests, benchmarks).
	OnPass func(Pass, Result, error)
	// Clock is the time source; the real clock when nil.
	Clock Clock
}

func (o *LoopOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RefreshInterval, 10*time.Second)
	def(&o.RuleRestoreInterval, 5*time.Second)
	def(&o.Settle, 20*time.Millisecond)
	def(&o.PropagationTimeout, 30*time.Second)
	def(&o.ReadyTimeout, 30*time.Second)
	if o.FullRefreshEvery <= 0 {
		o.FullRefreshEvery = 30
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
}

const (
	// restoreSettle is the wait before restoring a deleted rule, so that a manager re-adding the
	// rule itself wins and a burst of deletions is repaired at once.
	restoreSettle = 250 * time.Millisecond
	// restoreBurst restores happen without waiting for RuleRestoreInterval: a person or script
	// deleting a few rules one command at a time is repaired at once, a fight is slowed down.
	restoreBurst = 3
	// lookFirst and lookMax bound the backoff between reads looking for an ENI whose link is
	// there but that IMDS does not list or has not completed yet: found within lookMax of IMDS
	// completing it. The backoff starts again from lookFirst when what is looked for changes
	// (listed, a key arrived), because the next keys tend to follow within a second.
	lookFirst = 100 * time.Millisecond
	lookMax   = time.Second
	// retryFirst is the first wait before retrying a start IMDS could not answer; the wait
	// doubles until it reaches RefreshInterval, from where the refreshes retry.
	retryFirst = time.Second
)

// Run is the daemon: one pass at start, then a pass per burst of link events, an IMDS refresh
// every RefreshInterval, and rate-limited restores of deleted rules, routes and addresses, until ctx ends. All passes
// run on this goroutine, so work on an interface is never concurrent with other work.
func (r *Reconciler) Run(ctx context.Context, triggers <-chan Trigger, o LoopOptions) error {
	l := newLoop(r, triggers, o)
	defer l.stop()
	l.start(ctx)
	for l.step(ctx) {
	}
	return nil
}

// loop is the daemon's state between events: its timers, the pass waiting for its settle time,
// and what it is still looking for. Each event kind has one method; step dispatches one event.
type loop struct {
	r        *Reconciler
	o        LoopOptions
	clock    Clock
	triggers <-chan Trigger
	lastErr  string // the last pass error logged, so a repeated one is logged at debug

	refresh    Timer
	refreshes  int
	eventsLost bool // without link events, every refresh must read IMDS in full

	settle Timer
	next   Pass // merged pass waiting for the settle timer

	restore  Timer
	restores *rate.Limiter
	removed  []core.Route // routes of ours deleted since the last restore, as they were

	// again re-runs a pass soon: while a link IMDS does not list, or an ENI with a link IMDS has
	// not completed, is younger than PropagationTimeout, or while IMDS has never answered.
	again        Timer
	againWait    time.Duration
	lookingSince map[string]time.Time // MAC -> when it was first looked for
	lookingFor   string               // what the last look was for, to restart the backoff on a change

	readyBy Timer // nil once Ready was called
}

func newLoop(r *Reconciler, triggers <-chan Trigger, o LoopOptions) *loop {
	o.defaults()
	return &loop{r: r, o: o, clock: o.Clock, triggers: triggers,
		restores: rate.NewLimiter(rate.Every(o.RuleRestoreInterval), restoreBurst)}
}

// start runs the first pass, a full one. Rules deleted while the daemon was not running sent it
// no event, so that pass restores what is missing, like any full pass.
func (l *loop) start(ctx context.Context) {
	if l.o.Ready != nil {
		l.readyBy = l.clock.NewTimer(l.o.ReadyTimeout)
	}
	l.refresh = l.clock.NewTimer(l.o.RefreshInterval)
	l.restoreMissing(l.run(ctx, Pass{Reason: "start", Fetch: true, Full: true}))
}

func (l *loop) stop() {
	for _, t := range []Timer{l.refresh, l.settle, l.restore, l.again, l.readyBy} {
		stopTimer(t)
	}
}

// step waits for one event and handles it; false when ctx ended.
func (l *loop) step(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case t, ok := <-l.triggers:
		if !ok {
			l.onEventsLost()
			break
		}
		l.onTrigger(t)
	case <-chanOf(l.settle):
		l.onSettle(ctx)
	case <-chanOf(l.restore):
		l.onRestore()
	case <-chanOf(l.refresh):
		l.onRefresh(ctx)
	case <-chanOf(l.again):
		l.onAgain(ctx)
	case <-chanOf(l.readyBy):
		l.ready(false)
	}
	return true
}

func (l *loop) onTrigger(t Trigger) {
	switch t.Kind {
	case LinkAdded:
		l.onLinkAdded(t.Link)
	case LinkRenamed:
		l.onLinkRenamed(t.Link)
	case LinkRemoved:
		l.onLinkRemoved(t.Link)
	case RuleRemoved:
		if core.OwnsRule(t.Rule.Priority, t.Rule.Table) {
			l.scheduleRestore()
		}
	case RouteRemoved:
		if l.r.plannedTable(t.Route.Table) {
			l.removed = append(l.removed, t.Route)
			l.scheduleRestore()
		}
	case AddressRemoved:
		if l.r.plannedAddress(t.Address) {
			l.scheduleRestore()
		}
	case Resync:
		l.schedule(Pass{Reason: "resync", Fetch: true, Full: true})
	case RouterChanged:
		l.onRouterChanged(t.Link, t.Router)
	case ManagerRestarted:
		// The snapshot still holds: the manager's restart changed nothing in IMDS.
		l.schedule(Pass{Reason: "network manager restarted", Full: true})
	}
}

// onRouterChanged applies without reading IMDS when the router matters: the link is planned and
// its router differs from the one of the last settled apply, or that apply did not settle (an
// interface waits for this RA). A manager re-announcing the same router costs nothing.
func (l *loop) onRouterChanged(link core.Link, router netip.Addr) {
	if l.r.NoteRouter(link, router) {
		l.schedule(Pass{Reason: "IPv6 router changed on " + link.Name})
	}
}

func (l *loop) onLinkAdded(link core.Link) {
	if !l.r.mayBeENI(link) {
		return // container veths, bridges, tunnels: not worth an IMDS read
	}
	// Read the link's ENI in full (Added; the others as last read, see attached.go): a re-attached
	// ENI keeps its MAC but may get another device number, and a new one must not be planned from
	// stale keys.
	l.schedule(Pass{Reason: "link added " + link.Name, Fetch: true, Full: true, Added: link.MAC})
}

func (l *loop) onLinkRenamed(link core.Link) {
	if l.r.mayBeENI(link) || l.r.Planned(link.MAC) {
		l.schedule(Pass{Reason: "link renamed " + link.Name})
	}
}

func (l *loop) onLinkRemoved(link core.Link) {
	if l.r.Planned(link.MAC) {
		l.schedule(Pass{Reason: "link removed " + link.Name})
	}
}

func (l *loop) onEventsLost() {
	l.r.log.Warn("netlink events stopped; attach and detach are picked up by the refresh from now on")
	l.triggers, l.eventsLost = nil, true
}

// schedule merges p into the pass waiting for the settle timer, arming it if none waits.
func (l *loop) schedule(p Pass) {
	if l.settle == nil {
		l.next = p
		l.settle = l.clock.NewTimer(l.o.Settle)
		return
	}
	l.next.Reason += ", " + p.Reason
	l.next.Added = mergeAdded(l.next, p)
	l.next.Fetch = l.next.Fetch || p.Fetch
	l.next.Full = l.next.Full || p.Full
}

func (l *loop) onSettle(ctx context.Context) {
	l.settle = nil
	l.run(ctx, l.next)
}

// scheduleRestore arms the restore timer after a rule, route or address of ours was removed:
// after restoreSettle, or later when the burst of restores is used up. Scheduling takes no token:
// only a restore that put something back does, so a manager deleting and re-adding its routes
// (a reconfiguration, a DHCP renewal) does not use up the restores a real deletion needs.
func (l *loop) scheduleRestore() {
	if l.restore != nil {
		return
	}
	wait := restoreSettle
	now := l.clock.Now()
	if tokens := l.restores.TokensAt(now); tokens < 1 {
		wait = max(wait, time.Duration((1-tokens)/float64(l.restores.Limit())*float64(time.Second)))
	}
	l.restore = l.clock.NewTimer(wait)
}

func (l *loop) onRestore() {
	l.restore = nil
	removed := l.removed
	l.removed = nil
	restored, err := l.r.Restore(removed)
	if !restored.Empty() {
		l.restores.AllowN(l.clock.Now(), 1)
		l.r.log.Info("restored what someone else removed", restored.logArgs()...)
	}
	if err != nil {
		l.r.log.Warn("cannot restore", "error", err)
	}
}

func (l *loop) onRefresh(ctx context.Context) {
	l.refreshes++
	full := l.eventsLost || l.refreshes%l.o.FullRefreshEvery == 0
	res := l.run(ctx, Pass{Reason: "refresh", Fetch: true, Full: full})
	l.refresh = l.clock.NewTimer(l.o.RefreshInterval)
	// Deletions arrive as events (a lost event makes netlinkx send Resync), so only full
	// refreshes dump the rules, routes and addresses to check: netlink dumps are most of an idle
	// daemon's CPU. They also find the IPv4 routes the kernel flushed without an event.
	if full {
		l.restoreMissing(res)
	}
}

// restoreMissing puts back the rules, routes and addresses of ours that a full pass finds
// missing, unless that pass changed the manager's configuration: the manager is then still
// applying it, and a restore would race it.
func (l *loop) restoreMissing(res Result) {
	if res.Report.Changed() {
		return
	}
	restored, err := l.r.Restore(nil)
	if !restored.Empty() {
		l.restores.AllowN(l.clock.Now(), 1) // counts against a fight like any restore
		l.r.log.Info("restored missing configuration", restored.logArgs()...)
	}
	if err != nil {
		l.r.log.Debug("cannot restore", "error", err)
	}
}

func (l *loop) onAgain(ctx context.Context) {
	l.again = nil
	reason := "retry: IMDS has not answered yet"
	if l.r.HasSnapshot() {
		reason = "look for ENIs IMDS has not listed or completed yet"
	}
	// The backend is skipped if the look changes nothing.
	l.run(ctx, Pass{Reason: reason, Fetch: true, Look: true})
}

// run runs one pass, logs its error once until it changes, and decides what follows from it.
func (l *loop) run(ctx context.Context, p Pass) Result {
	res, err := l.r.Once(ctx, p)
	switch {
	case err != nil && ctx.Err() == nil && err.Error() != l.lastErr:
		l.r.log.Error("reconcile failed", "reason", p.Reason, "error", err)
		l.lastErr = err.Error()
	case err != nil:
		l.r.log.Debug("reconcile failed again", "reason", p.Reason, "error", err)
	case l.lastErr != "":
		l.r.log.Info("reconcile succeeded again", "reason", p.Reason)
		l.lastErr = ""
	}
	if l.o.OnPass != nil {
		l.o.OnPass(p, res, err)
	}
	if l.r.HasSnapshot() {
		l.ready(true)
	}
	l.scheduleAgain()
	return res
}

// scheduleAgain arms the again timer with backoff while there is something to look for soon: a
// link with an ENI driver that IMDS did not list or an ENI with a link IMDS has not completed,
// first seen less than PropagationTimeout ago (attach races IMDS on real EC2: the link often comes
// first, the keys over seconds), or no IMDS answer at all yet.
func (l *loop) scheduleAgain() {
	now := l.clock.Now()
	since := map[string]time.Time{}
	var looking []string
	for _, p := range l.r.Looking() {
		first, seen := l.lookingSince[p.MAC]
		if !seen {
			first = now
		}
		since[p.MAC] = first
		if now.Sub(first) < l.o.PropagationTimeout {
			looking = append(looking, fmt.Sprintf("%s (%s)", p.Name, p.Reason))
		}
	}
	l.lookingSince = since
	lookingFor := strings.Join(looking, ", ")
	if lookingFor != l.lookingFor {
		l.lookingFor, l.againWait = lookingFor, 0
	}

	var wait time.Duration
	switch {
	case len(looking) > 0 && l.r.HasSnapshot():
		wait = min(max(2*l.againWait, lookFirst), lookMax)
	case !l.r.HasSnapshot():
		wait = max(2*l.againWait, retryFirst)
		if wait >= l.o.RefreshInterval {
			return // the backoff reached the refresh interval: the refreshes are the retries
		}
	default:
		l.again, l.againWait = stopTimer(l.again), 0
		return
	}
	if l.again != nil {
		return
	}
	l.againWait = wait
	if len(looking) > 0 {
		l.r.log.Debug("ENIs not listed or not complete in IMDS yet; looking again", "for", lookingFor, "in", l.againWait)
	}
	l.again = l.clock.NewTimer(l.againWait)
}

// ready calls Ready once: ok after the first pass that could read IMDS, or !ok when ReadyTimeout
// passed without one.
func (l *loop) ready(ok bool) {
	if l.readyBy == nil {
		return
	}
	l.readyBy = stopTimer(l.readyBy)
	if !ok {
		l.r.log.Warn("IMDS has not answered yet; reporting ready anyway so boot goes on", "waited", l.o.ReadyTimeout)
	}
	l.o.Ready(ok)
}

// fmtRules lists rules for a log line, each as `ip rule` prints it.
func fmtRules(rules []core.Rule) string {
	parts := make([]string, 0, len(rules))
	for _, r := range rules {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}
