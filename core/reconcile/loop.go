package reconcile

import (
	"context"
	"fmt"
	"strings"
	"time"

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
)

// Trigger is one event for the loop.
type Trigger struct {
	Kind TriggerKind
	Link core.Link
	Rule core.Rule
}

// LoopOptions tune the daemon loop.
type LoopOptions struct {
	// RefreshInterval between IMDS refreshes (secondary IPs and prefixes have no event).
	RefreshInterval time.Duration
	// FullRefreshEvery: every Nth refresh re-reads the stable IMDS keys too.
	FullRefreshEvery int
	// RuleRestoreInterval is the minimum time between two restores of deleted rules, so an agent
	// that keeps deleting them cannot make us spin.
	RuleRestoreInterval time.Duration
	// Settle coalesces a burst of link events (udev renames right after attach) into one pass.
	Settle time.Duration
	// Ready is called once after the first pass (sd_notify READY=1).
	Ready func()
	// OnPass, if set, sees every pass result (tests, benchmarks).
	OnPass func(Pass, Result, error)
}

func (o *LoopOptions) defaults() {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = 10 * time.Second
	}
	if o.FullRefreshEvery <= 0 {
		o.FullRefreshEvery = 30
	}
	if o.RuleRestoreInterval <= 0 {
		o.RuleRestoreInterval = 5 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 20 * time.Millisecond
	}
}

// Run is the daemon: one pass at start, then a pass per burst of link events, an IMDS refresh
// every RefreshInterval, and rate-limited restores of deleted rules, until ctx ends. All passes
// run on this goroutine, so work on an interface is never concurrent with other work.
func (r *Reconciler) Run(ctx context.Context, triggers <-chan Trigger, o LoopOptions) error {
	o.defaults()
	lastErr := ""
	run := func(p Pass) Result {
		res, err := r.Once(ctx, p)
		switch {
		case err != nil && ctx.Err() == nil && err.Error() != lastErr:
			r.log.Error("reconcile failed", "reason", p.Reason, "error", err)
			lastErr = err.Error()
		case err != nil:
			r.log.Debug("reconcile failed again", "reason", p.Reason, "error", err)
		case lastErr != "":
			r.log.Info("reconcile succeeded again", "reason", p.Reason)
			lastErr = ""
		}
		if o.OnPass != nil {
			o.OnPass(p, res, err)
		}
		return res
	}
	// No rule restore here: right after start the manager may still be applying the files this
	// pass wrote. Rules that stay missing are restored by the next refresh.
	run(Pass{Reason: "start", Fetch: true, Full: true})
	if o.Ready != nil {
		o.Ready()
	}

	refresh := time.NewTicker(o.RefreshInterval)
	defer refresh.Stop()
	refreshes := 0
	eventsLost := false // without link events, every refresh must read IMDS in full

	var (
		settle      *time.Timer
		settleC     <-chan time.Time
		next        Pass // merged pass waiting for the settle timer
		restore     *time.Timer
		restoreC    <-chan time.Time
		lastRestore time.Time
	)
	schedule := func(p Pass) {
		if settleC == nil {
			next = p
			settle = time.NewTimer(o.Settle)
			settleC = settle.C
			return
		}
		next.Reason += ", " + p.Reason
		next.Fetch = next.Fetch || p.Fetch
		next.Full = next.Full || p.Full
	}
	scheduleRestore := func() {
		if restoreC != nil {
			return
		}
		// Wait a moment so a manager that is re-adding the rule itself wins, and never restore
		// more often than RuleRestoreInterval.
		wait := 250 * time.Millisecond
		if !lastRestore.IsZero() { // time.Since(zero) saturates, and adding to it would overflow
			if next := time.Until(lastRestore.Add(o.RuleRestoreInterval)); next > wait {
				wait = next
			}
		}
		restore = time.NewTimer(wait)
		restoreC = restore.C
	}
	defer func() {
		if settle != nil {
			settle.Stop()
		}
		if restore != nil {
			restore.Stop()
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return nil
		case t, ok := <-triggers:
			if !ok {
				r.log.Warn("netlink events stopped; attach and detach are picked up by the refresh from now on")
				triggers, eventsLost = nil, true
				continue
			}
			switch t.Kind {
			case LinkAdded:
				if !r.mayBeENI(t.Link) {
					continue // container veths, bridges, tunnels: not worth an IMDS read
				}
				// Re-read everything: a re-attached ENI keeps its MAC but may get another device
				// number, and a new one must not be planned from stale keys.
				schedule(Pass{Reason: "link added " + t.Link.Name, Fetch: true, Full: true})
			case LinkRenamed:
				if r.mayBeENI(t.Link) || r.Planned(t.Link.MAC) {
					schedule(Pass{Reason: "link renamed " + t.Link.Name})
				}
			case LinkRemoved:
				if r.Planned(t.Link.MAC) {
					schedule(Pass{Reason: "link removed " + t.Link.Name})
				}
			case Resync:
				schedule(Pass{Reason: "resync", Fetch: true, Full: true})
			case RuleRemoved:
				if core.OwnsRule(t.Rule.Priority, t.Rule.Table) {
					scheduleRestore()
				}
			}
		case <-settleC:
			settleC = nil
			run(next)
		case <-restoreC:
			restoreC = nil
			lastRestore = time.Now()
			restored, err := r.RestoreRules()
			if err != nil {
				r.log.Warn("cannot restore rules", "error", err)
			} else if len(restored) > 0 {
				r.log.Info("restored rules deleted by someone else", "rules", fmtRules(restored))
			}
		case <-refresh.C:
			refreshes++
			full := eventsLost || refreshes%o.FullRefreshEvery == 0
			res := run(Pass{Reason: "refresh", Fetch: true, Full: full})
			// Deletions arrive as RuleRemoved events (a lost event makes netlinkx send Resync), so
			// only full refreshes dump the rules to check: two netlink dumps per refresh are most
			// of an idle daemon's CPU. Not right after a change: the manager is still applying it.
			if !full || res.Report.Changed() {
				continue
			}
			if restored, err := r.RestoreRules(); err == nil && len(restored) > 0 {
				lastRestore = time.Now()
				r.log.Info("restored missing rules", "rules", fmtRules(restored))
			}
		}
	}
}

func fmtRules(rules []core.Rule) string {
	parts := make([]string, 0, len(rules))
	for _, r := range rules {
		parts = append(parts, fmt.Sprintf("from %s lookup %d", r.From, r.Table))
	}
	return strings.Join(parts, ", ")
}
