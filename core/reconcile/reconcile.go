// Package reconcile drives one backend from IMDS snapshots and kernel links: a single pass
// (Reconciler.Once, used by `apply`) and the event loop of the daemon (Reconciler.Run).
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Snapshotter reads the instance's ENIs from IMDS. reuse lets it skip keys that cannot change
// while an ENI stays attached. On error the returned Instance must not be used.
type Snapshotter interface {
	Snapshot(ctx context.Context, reuse *core.Instance) (core.Instance, error)
}

// Kernel is the part of netlink the reconciler needs.
type Kernel interface {
	Links() ([]core.Link, error)
	EnsureAltnames(link core.Link, names []string) ([]string, error)
	EnsureRules(want []core.Rule) ([]core.Rule, error)
	DeleteRules(rules []core.Rule) error
}

// Reconciler owns the last-known-good snapshot and plan. It is not safe for concurrent use: the
// daemon serialises every pass through one goroutine, which is what keeps per-interface work
// ordered without locks.
type Reconciler struct {
	imds    Snapshotter
	kernel  Kernel
	backend core.Backend
	opts    core.PlanOptions
	log     hclog.Logger

	last     *core.Instance // last snapshot IMDS answered; kept across IMDS failures
	lastPlan *core.Plan
	// applied is what the backend last applied without error. A refresh that plans exactly the
	// same for the same links skips the backend: an idle host costs one IMDS read per refresh
	// and nothing else. Full passes apply regardless, so a deleted file still comes back.
	applied *appliedState
	// staleRules are rules of detached ENIs still to delete; kept until a delete succeeds.
	staleRules []core.Rule
	noted      string // fingerprint of the last logged pending list and warnings: logged once per change
	dryRun     bool
	adjust     func(core.PlanOptions) core.PlanOptions
}

// Option configures a Reconciler.
type Option func(*Reconciler)

// AdjustOptions makes every pass plan with adjust(opts) instead of opts: what the host shows at
// that moment (hostmode: an opt-out of amazon-ec2-net-utils 2.x, the VPC CNI) comes in as plan
// options, so the planner stays pure and plan, apply and the daemon decide alike.
func AdjustOptions(adjust func(core.PlanOptions) core.PlanOptions) Option {
	return func(r *Reconciler) { r.adjust = adjust }
}

// DryRun makes the reconciler change nothing in the kernel itself (altnames, rules); combine it
// with a dry-run backend for `apply --dry-run`.
func DryRun() Option { return func(r *Reconciler) { r.dryRun = true } }

// New returns a Reconciler.
func New(imds Snapshotter, kernel Kernel, backend core.Backend, opts core.PlanOptions, log hclog.Logger, options ...Option) *Reconciler {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	r := &Reconciler{imds: imds, kernel: kernel, backend: backend, opts: opts, log: log}
	for _, o := range options {
		o(r)
	}
	return r
}

// Pass says what a reconcile pass may skip.
type Pass struct {
	// Reason is logged with the pass ("start", "link added ens6", "refresh").
	Reason string
	// Fetch asks IMDS for a new snapshot. Without it (a detach) the last snapshot is planned
	// against the current links.
	Fetch bool
	// Full re-reads even the IMDS keys that cannot change while an ENI is attached.
	Full bool
}

// Result is what one pass did.
type Result struct {
	Plan            core.Plan
	Changes         core.Changes
	AltnamesAdded   []string
	RulesRestored   []core.Rule
	IMDSUnreachable bool
}

// Once runs one reconcile pass. An IMDS failure never removes anything: the pass goes on with the
// last snapshot if there is one (so detaches are still cleaned up) and reports the error.
func (r *Reconciler) Once(ctx context.Context, pass Pass) (Result, error) {
	var res Result
	var imdsErr error
	if pass.Fetch || r.last == nil {
		var reuse *core.Instance
		if !pass.Full {
			reuse = r.last
		}
		inst, err := r.imds.Snapshot(ctx, reuse)
		if err != nil {
			imdsErr = fmt.Errorf("read IMDS: %w", err)
			res.IMDSUnreachable = true
			if r.last == nil {
				return res, fmt.Errorf("%w; nothing configured yet, nothing changed", imdsErr)
			}
			r.log.Warn("IMDS unreachable; keeping the last known state", "error", err)
		} else {
			r.last = &inst
		}
	}

	links, err := r.kernel.Links()
	if err != nil {
		return res, errors.Join(imdsErr, fmt.Errorf("list links: %w", err))
	}
	opts := r.opts
	if r.adjust != nil {
		opts = r.adjust(opts)
	}
	plan := core.NewPlan(*r.last, links, opts)
	if a, ok := r.backend.(core.PlanAdjuster); ok {
		// Per-interface settings of the manager (ifcfg's EC2SYNC=no) hold for everything below.
		plan = a.AdjustPlan(plan)
	}
	res.Plan = plan
	r.noteOnce(plan)

	var cleanupErr error
	r.staleRules = append(r.staleRules, r.detachedRules(plan, links)...)
	if !r.dryRun && len(r.staleRules) > 0 {
		if err := r.kernel.DeleteRules(r.staleRules); err != nil {
			cleanupErr = fmt.Errorf("remove rules of detached ENIs (will retry): %w", err)
		} else {
			r.log.Info("removed rules of detached ENIs", "rules", fmtRules(r.staleRules))
			r.staleRules = nil
		}
	}

	if !pass.Full && r.applied.same(plan, links) {
		r.lastPlan = &plan
		r.log.Debug("reconciled", "reason", pass.Reason, "interfaces", len(plan.Interfaces), "pending", len(plan.Pending),
			"changed", false, "backend", "skipped: same plan and links as the last apply")
		return res, errors.Join(imdsErr, cleanupErr)
	}
	changes, err := r.backend.Apply(ctx, plan, links)
	res.Changes = changes
	if err == nil {
		r.applied = &appliedState{plan: plan, links: slices.Clone(links)}
	} else {
		r.applied = nil
	}
	if changes.Changed() {
		r.log.Info("configuration changed", "reason", pass.Reason, "backend", r.backend.Name(),
			"written", strings.Join(changes.Written, " "), "removed", strings.Join(changes.Removed, " "),
			"reloads", changes.Reloads)
	}
	errs := []error{imdsErr, cleanupErr}
	if err != nil {
		errs = append(errs, fmt.Errorf("%s backend: %w", r.backend.Name(), err))
	}

	if !r.dryRun {
		res.AltnamesAdded = r.ensureAltnames(plan, links)
	}
	r.lastPlan = &plan
	r.log.Debug("reconciled", "reason", pass.Reason, "interfaces", len(plan.Interfaces), "pending", len(plan.Pending),
		"changed", changes.Changed())
	return res, errors.Join(errs...)
}

// ensureAltnames gives every planned link its altnames and returns the ones it added.
func (r *Reconciler) ensureAltnames(plan core.Plan, links []core.Link) []string {
	byName := make(map[string]core.Link, len(links))
	for _, l := range links {
		byName[l.Name] = l
	}
	var all []string
	for _, ifc := range plan.Interfaces {
		added, err := r.kernel.EnsureAltnames(byName[ifc.Name], ifc.Altnames)
		if err != nil {
			// Altnames are a convenience for people and scripts; routing works without them.
			r.log.Warn("cannot add altnames", "iface", ifc.Name, "error", err)
			continue
		}
		if len(added) > 0 {
			r.log.Info("altnames added", "iface", ifc.Name, "altnames", strings.Join(added, " "))
			all = append(all, added...)
		}
	}
	return all
}

type appliedState struct {
	plan  core.Plan
	links []core.Link
}

func (a *appliedState) same(plan core.Plan, links []core.Link) bool {
	return a != nil && slices.Equal(a.links, links) && reflect.DeepEqual(a.plan, plan)
}

// RestoreRules re-adds source rules of the current plan that someone deleted. The backend's
// manager would only restore them at its next reconfiguration, which may never come.
func (r *Reconciler) RestoreRules() ([]core.Rule, error) {
	if r.lastPlan == nil || r.dryRun {
		return nil, nil
	}
	var want []core.Rule
	for _, ifc := range r.lastPlan.Interfaces {
		want = append(want, ifc.Rules...)
	}
	if len(want) == 0 {
		return nil, nil
	}
	added, err := r.kernel.EnsureRules(want)
	if err != nil {
		return added, fmt.Errorf("restore rules: %w", err)
	}
	return added, nil
}

// detachedRules are the rules the previous plan had for interfaces whose link is gone and that
// the new plan does not have (compared rule by rule: another ENI may take over the same table).
// The manager normally removes them with the link, but not a rule we restored: to it, that rule
// is foreign.
func (r *Reconciler) detachedRules(plan core.Plan, links []core.Link) []core.Rule {
	if r.lastPlan == nil {
		return nil
	}
	present := make(map[int]bool, len(links))
	for _, l := range links {
		present[l.Index] = true
	}
	planned := map[core.Rule]bool{}
	for _, ifc := range plan.Interfaces {
		for _, rule := range ifc.Rules {
			planned[rule] = true
		}
	}
	var stale []core.Rule
	for _, ifc := range r.lastPlan.Interfaces {
		if present[ifc.Index] {
			continue
		}
		for _, rule := range ifc.Rules {
			if !planned[rule] && !slices.Contains(r.staleRules, rule) {
				stale = append(stale, rule)
			}
		}
	}
	return stale
}

// mayBeENI reports whether a new link could be an ENI: its driver is an ENI driver, or its
// driver is not known yet (a lookup that raced a rename) on a device that is not virtual.
func (r *Reconciler) mayBeENI(l core.Link) bool {
	return slices.Contains(r.opts.Drivers, l.Driver) || (l.Driver == "" && l.Kind == "")
}

// Planned reports whether the current plan configures a link with this MAC.
func (r *Reconciler) Planned(mac string) bool {
	if r.lastPlan == nil {
		return false
	}
	return slices.ContainsFunc(r.lastPlan.Interfaces, func(i core.InterfacePlan) bool { return i.MAC == mac })
}

// noteOnce logs pending ENIs (with a link) and plan warnings when they change, not every pass.
func (r *Reconciler) noteOnce(p core.Plan) {
	var b strings.Builder
	for _, pe := range p.Pending {
		fmt.Fprintf(&b, "%s %s: %s; ", pe.MAC, pe.Name, pe.Reason)
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "%s; ", w)
	}
	if fp := b.String(); fp != r.noted {
		r.noted = fp
		for _, pe := range p.Pending {
			if pe.Name != "" { // an ENI in IMDS without a link is normal (detaching, or another netns)
				r.log.Info("ENI not configured", "iface", pe.Name, "mac", pe.MAC, "reason", pe.Reason)
			}
		}
		for _, w := range p.Warnings {
			r.log.Warn(w)
		}
	}
}
