// Package reconcile drives one backend from IMDS snapshots and kernel links: a single pass
// (Reconciler.Once, used by `apply` and `plan`) and the event loop of the daemon (Reconciler.Run).
package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/applyrun"
	"github.com/ec2-net-utils/ec2-net-utils/internal/logonce"
)

// Snapshotter reads the instance's ENIs from IMDS. On error the returned Instance must not be used.
type Snapshotter interface {
	// Snapshot reads every ENI. reuse lets it skip keys that cannot change while an ENI stays
	// attached, and poll only what the ENIs pending in reuse still miss. The daemon's must not
	// wait for ENIs still propagating (the loop looks again for them); plan's and apply's may.
	Snapshot(ctx context.Context, reuse *core.Instance) (core.Instance, error)
	// Look reads only what the daemon looks for: the ENIs listed since the last read, and what
	// the pending ones still miss; the others are as the last read had them. It costs one
	// request (the macs/ listing) while nothing changes.
	Look(ctx context.Context) (core.Instance, error)
}

// Kernel is the part of netlink the reconciler needs.
type Kernel interface {
	Links() ([]core.Link, error)
	EnsureAltnames(link core.Link, names []string) ([]string, error)
	EnsureRules(want []core.Rule) ([]core.Rule, error)
	DeleteRules(rules []core.Rule) error
	// Rules lists the plain source rules with a priority in [lo, hi].
	Rules(lo, hi int) ([]core.Rule, error)
	// EnsureRoutes and EnsureAddresses add what is missing, idempotently, and never remove:
	// what Restore puts back.
	EnsureRoutes(link core.Link, routes []core.Route) ([]core.Route, error)
	EnsureAddresses(link core.Link, want []netip.Prefix) ([]netip.Prefix, error)
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

	last *core.Instance // last snapshot IMDS answered; kept across IMDS failures
	// lastPlan is the plan of the last pass without the interfaces the backend leaves alone:
	// what rule restore, altnames and detach cleanup work from.
	lastPlan *core.Plan
	// leftAlone maps the MAC of every interface the backend last reported as left alone to why.
	leftAlone map[string]string
	// unlisted are the links of the last pass with an ENI driver whose MAC IMDS did not list.
	unlisted []core.Link
	// looking are what the loop looks again for soon: the unlisted links, and the ENIs with a
	// link that IMDS has not finished propagating.
	looking []core.Pending
	// applied is what the backend last applied without error and settled. A refresh that plans exactly the
	// same for the same links skips the backend: an idle host costs one IMDS read per refresh
	// and nothing else. Full passes apply regardless, so a deleted file still comes back.
	applied *appliedState
	// routers are the RA routers of planned links by index, as router events reported them; a
	// settled pass is skipped only when they are those it was applied with.
	routers map[int]netip.Addr
	// staleRules are rules of detached ENIs still to delete; kept until a delete succeeds.
	staleRules []core.Rule
	// notes keeps the pending list, the backend's outcomes and the plan warnings quiet: logged
	// when they change, not at every pass.
	notes  logonce.Notes
	plans  planCache
	dryRun bool
	adjust func(core.PlanOptions) core.PlanOptions
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
	// Full re-reads even the IMDS keys that cannot change while an ENI is attached, and applies
	// even when nothing changed since the last settled pass.
	Full bool
	// Look reads only what is being looked for (see Looking and Snapshotter.Look): a look for an
	// ENI IMDS has not listed or completed yet.
	Look bool
	// Added are the MACs (space separated) of the links whose arrival made this pass Full: its
	// IMDS read then reads only their ENIs in full (attached.go). Empty for any other Full pass.
	Added string
}

// Result is what one pass did.
type Result struct {
	// Plan is the plan the pass kept: the interfaces the backend leaves alone are under Ignored.
	Plan core.Plan
	// Report is the backend's (the last settled one when the pass skipped the backend).
	Report          core.Report
	AltnamesAdded   []string
	IMDSUnreachable bool
}

// Once runs one reconcile pass. An IMDS failure never removes anything: the pass goes on with the
// last snapshot if there is one (so detaches are still cleaned up) and reports the error.
//
// While a link with an ENI driver has a MAC the last snapshot does not know, a Fetch pass looks
// (Snapshotter.Look) before it reads with reuse: a read that reuses a snapshot does not list
// macs/, and only a listing finds an ENI IMDS listed late, attached while IMDS was down, or that
// answered 404 for a moment.
func (r *Reconciler) Once(ctx context.Context, pass Pass) (Result, error) {
	var res Result
	var imdsErr error
	if pass.Fetch || r.last == nil {
		if imdsErr = r.read(ctx, pass); imdsErr != nil {
			res.IMDSUnreachable = true
			if r.last == nil {
				return res, fmt.Errorf("%w; nothing configured yet, nothing changed", imdsErr)
			}
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
	plan := r.plans.get(*r.last, links, opts) // planreuse.go
	r.unlisted = r.unlistedLinks(links)
	r.looking = r.lookingFor(plan)
	maps.DeleteFunc(r.routers, func(index int, _ netip.Addr) bool { // routers of detached links
		return !slices.ContainsFunc(links, func(l core.Link) bool { return l.Index == index })
	})
	var orphanErr error
	if pass.Full && imdsErr == nil && !r.dryRun {
		orphanErr = r.noteOrphans(plan, links)
	}
	cleanupErr := errors.Join(orphanErr, r.removeDetached(plan, links))

	if !pass.Full && r.applied.same(plan, links, r.routers) {
		res.Plan, res.Report = r.applied.kept, r.applied.report
		r.lastPlan = &r.applied.kept
		r.noteOnce(res.Plan, res.Report)
		r.log.Debug("reconciled", "reason", pass.Reason, "interfaces", len(res.Plan.Interfaces), "pending", len(plan.Pending),
			"changed", false, "backend", "skipped: same plan and links as the last apply")
		return res, errors.Join(imdsErr, cleanupErr)
	}
	applyErr := r.apply(ctx, pass, plan, links, &res)
	return res, errors.Join(imdsErr, cleanupErr, applyErr)
}

// read takes a new snapshot into r.last: without reuse for a full pass, only what is looked for
// for a look, otherwise with reuse (after a look while a link is unlisted). On error r.last stays
// as it was.
func (r *Reconciler) read(ctx context.Context, pass Pass) error {
	var inst core.Instance
	var err error
	ar, added := r.readsAdded(pass)
	switch {
	case added:
		inst, err = ar.Attached(ctx, strings.Fields(pass.Added))
	case pass.Full || r.last == nil:
		inst, err = r.imds.Snapshot(ctx, nil)
	case pass.Look:
		inst, err = r.imds.Look(ctx)
	case len(r.unlisted) > 0:
		if inst, err = r.imds.Look(ctx); err == nil {
			inst, err = r.imds.Snapshot(ctx, &inst)
		}
	default:
		inst, err = r.imds.Snapshot(ctx, r.last)
	}
	if err != nil {
		return r.readFailed(err)
	}
	r.last = &inst
	return nil
}

// readFailed wraps a failed read; with a last snapshot to keep, it says so, since the pass goes on
// with it.
func (r *Reconciler) readFailed(err error) error {
	if r.last != nil {
		r.log.Warn("IMDS unreachable; keeping the last known state", "error", err)
	}
	return fmt.Errorf("read IMDS: %w", err)
}

// removeDetached deletes the rules of detached ENIs, remembering them until a delete succeeds.
func (r *Reconciler) removeDetached(plan core.Plan, links []core.Link) error {
	r.staleRules = append(r.staleRules, r.detachedRules(plan, links)...)
	if r.dryRun || len(r.staleRules) == 0 {
		return nil
	}
	if err := r.kernel.DeleteRules(r.staleRules); err != nil {
		return fmt.Errorf("remove rules of detached ENIs (will retry): %w", err)
	}
	r.log.Info("removed rules of detached ENIs", "rules", fmtRules(r.staleRules))
	r.staleRules = nil
	return nil
}

// noteOrphans adds to the rules to delete those of ours (table = priority, in the band) whose
// table belongs to no ENI with a link: left by an ENI detached while the agent was stopped, which
// sends no event and which the agent has no memory of (networkd keeps such a rule: the ENI's files
// went without a reload). An ENI IMDS lists with a link keeps its table's rules whether planned or
// not (excluded, the VPC CNI's, left alone by the backend). While a link's ENI is not known (not
// listed yet, incomplete) its table may be any: nothing is an orphan then.
func (r *Reconciler) noteOrphans(plan core.Plan, links []core.Link) error {
	if len(r.unlisted) > 0 || slices.ContainsFunc(plan.Pending, func(p core.Pending) bool { return p.Name != "" }) {
		return nil
	}
	present := make(map[string]bool, len(links))
	for _, l := range links {
		present[strings.ToLower(l.MAC)] = true
	}
	inUse := map[int]bool{}
	for _, ifc := range plan.Interfaces {
		inUse[ifc.Table] = true
	}
	for _, e := range r.last.ENIs {
		if present[e.MAC] {
			inUse[core.TableFor(e.NetworkCard, e.DeviceNumber)] = true
		}
	}
	rules, err := r.kernel.Rules(core.OwnedPriorityMin, core.OwnedPriorityMax)
	if err != nil {
		return fmt.Errorf("look for rules of ENIs detached while the agent was stopped: %w", err)
	}
	for _, rule := range rules {
		if core.OwnsRule(rule.Priority, rule.Table) && !inUse[rule.Table] && !slices.Contains(r.staleRules, rule) {
			r.staleRules = append(r.staleRules, rule)
		}
	}
	return nil
}

// apply has the backend apply plan, then does what follows its report: interfaces it leaves
// alone leave the kept plan, the others get their altnames, and the pass is remembered as
// applied only if the backend settled it.
func (r *Reconciler) apply(ctx context.Context, pass Pass, plan core.Plan, links []core.Link, res *Result) error {
	report, err := r.backend.Apply(applyrun.WithUnchanged(ctx, r.unchangedFor(pass, plan)), plan, links) // attached.go
	if err != nil {
		err = fmt.Errorf("%s backend: %w", r.backend.Name(), err)
	}
	kept := r.leaveAlone(plan, report)
	res.Plan, res.Report = kept, report
	r.lastPlan = &kept
	// Only a pass the backend finished may be skipped next time: a deferred interface waits for
	// state outside the plan (an RA), so the next pass must try again even if nothing changed.
	r.applied = nil
	if err == nil && report.Settled(plan) {
		r.applied = &appliedState{plan: plan, links: slices.Clone(links), kept: kept, report: report, routers: maps.Clone(r.routers)}
	}
	if report.Changed() {
		r.log.Info("configuration changed", "reason", pass.Reason, "backend", r.backend.Name(),
			"written", strings.Join(report.Written, " "), "removed", strings.Join(report.Removed, " "),
			"reloads", report.Reloads)
	}
	r.noteOnce(kept, report)
	if !r.dryRun {
		res.AltnamesAdded = r.ensureAltnames(kept, links)
	}
	r.log.Debug("reconciled", "reason", pass.Reason, "interfaces", len(kept.Interfaces), "pending", len(kept.Pending),
		"changed", report.Changed(), "settled", r.applied != nil)
	return err
}

// leaveAlone returns plan without the interfaces the backend leaves alone, which move to Ignored
// with the backend's reason: no other part of the agent touches them (rules, altnames, cleanup).
// An interface the report says nothing about (the backend failed before reaching it) keeps what
// the last report said, so a failing backend does not hand it back to the rest of the agent.
func (r *Reconciler) leaveAlone(plan core.Plan, report core.Report) core.Plan {
	alone := map[string]string{}
	for _, ifc := range plan.Interfaces {
		if ir, ok := report.Outcome(ifc.MAC); ok {
			if ir.Outcome == core.LeftAlone {
				alone[ifc.MAC] = ir.Reason
			}
		} else if reason, was := r.leftAlone[ifc.MAC]; was {
			alone[ifc.MAC] = reason
		}
	}
	r.leftAlone = alone
	if len(alone) == 0 {
		return plan
	}
	kept := plan
	kept.Interfaces = make([]core.InterfacePlan, 0, len(plan.Interfaces))
	kept.Ignored = slices.Clone(plan.Ignored)
	for _, ifc := range plan.Interfaces {
		reason, ok := alone[ifc.MAC]
		if !ok {
			kept.Interfaces = append(kept.Interfaces, ifc)
			continue
		}
		kept.Ignored = append(kept.Ignored, core.Ignored{Name: ifc.Name, MAC: ifc.MAC,
			Reason: fmt.Sprintf("left alone by the %s backend: %s", r.backend.Name(), reason)})
	}
	slices.SortFunc(kept.Ignored, func(a, b core.Ignored) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.MAC, b.MAC))
	})
	return kept
}

// unlistedLinks are the links with an ENI driver, not excluded, whose MAC the last snapshot does
// not know at all (neither an ENI nor a problem). On EC2 such a link is an ENI IMDS has not listed
// yet, or one whose read failed.
func (r *Reconciler) unlistedLinks(links []core.Link) []core.Link {
	known := make(map[string]bool, len(r.last.ENIs)+len(r.last.Problems))
	for _, e := range r.last.ENIs {
		known[e.MAC] = true
	}
	for _, p := range r.last.Problems {
		known[p.MAC] = true
	}
	var out []core.Link
	for _, l := range links {
		mac := strings.ToLower(l.MAC)
		if mac == "" || known[mac] || !slices.Contains(r.opts.Drivers, l.Driver) ||
			slices.Contains(r.opts.Exclude, l.Name) || slices.Contains(r.opts.Exclude, mac) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// lookingFor returns the unlisted links and the ENIs with a link that IMDS has not finished
// propagating, with the reason of each.
func (r *Reconciler) lookingFor(plan core.Plan) []core.Pending {
	out := make([]core.Pending, 0, len(r.unlisted))
	for _, l := range r.unlisted {
		out = append(out, core.Pending{MAC: strings.ToLower(l.MAC), Name: l.Name, Reason: "not listed in IMDS yet"})
	}
	propagating := map[string]bool{}
	for _, p := range r.last.Problems {
		propagating[p.MAC] = p.Kind == core.ProblemNotPropagated
	}
	for _, p := range plan.Pending {
		if p.Name != "" && propagating[p.MAC] {
			out = append(out, p)
		}
	}
	return out
}

// Looking returns what the last pass left to look for soon: the links with an ENI driver whose
// MAC IMDS did not list, and the ENIs with a link that IMDS has not finished propagating.
func (r *Reconciler) Looking() []core.Pending { return slices.Clone(r.looking) }

// Unlisted returns the links of the last pass that have an ENI driver but a MAC IMDS did not list.
func (r *Reconciler) Unlisted() []core.Link { return slices.Clone(r.unlisted) }

// HasSnapshot reports whether IMDS has answered at least once.
func (r *Reconciler) HasSnapshot() bool { return r.last != nil }

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

// appliedState is a pass the backend settled: the planner's plan and the links it was applied
// for, and what the pass kept of the plan (left-alone interfaces moved out) and the report.
type appliedState struct {
	plan    core.Plan
	links   []core.Link
	kept    core.Plan
	report  core.Report
	routers map[int]netip.Addr
}

func (a *appliedState) same(plan core.Plan, links []core.Link, routers map[int]netip.Addr) bool {
	return a != nil && slices.Equal(a.links, links) && reflect.DeepEqual(a.plan, plan) && a.hasRouters(routers)
}

// hasRouters reports whether the pass was applied with each of these routers on its link (a
// router gone since is no reason to apply again; see NoteRouter).
func (a *appliedState) hasRouters(routers map[int]netip.Addr) bool {
	if a == nil {
		return false
	}
	for index, router := range routers {
		if a.routers[index] != router {
			return false
		}
	}
	return true
}

// NoteRouter records the RA router of a link (zero: it has none any more) and reports whether a
// pass must apply for it: the link is planned, it has a router, and the last pass did not settle
// (an interface may wait for this router) or settled with another router on the link. A router
// that went away asks for nothing: no backend can route through a router it does not know, and
// a manager restarting IPv6 on each apply would otherwise be applied to again at every restart.
func (r *Reconciler) NoteRouter(link core.Link, router netip.Addr) bool {
	if !r.Planned(link.MAC) {
		return false
	}
	if !router.IsValid() {
		delete(r.routers, link.Index)
		return false
	}
	if r.routers == nil {
		r.routers = map[int]netip.Addr{}
	}
	r.routers[link.Index] = router
	return !r.applied.hasRouters(map[int]netip.Addr{link.Index: router})
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
	// Almost every pass has no link gone: skip indexing every planned rule (1 700 at 32 ENIs).
	if !slices.ContainsFunc(r.lastPlan.Interfaces, func(i core.InterfacePlan) bool { return !present[i.Index] }) {
		return nil
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

// noteOnce logs pending ENIs (with a link), interfaces the backend leaves alone or could not
// finish, and plan warnings when they change, not every pass.
func (r *Reconciler) noteOnce(p core.Plan, report core.Report) {
	var b strings.Builder
	for _, pe := range p.Pending {
		fmt.Fprintf(&b, "%s %s: %s; ", pe.MAC, pe.Name, pe.Reason)
	}
	for _, ir := range report.Interfaces {
		fmt.Fprintf(&b, "%s %s: %s %s; ", ir.MAC, ir.Name, ir.Outcome, ir.Reason)
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "%s; ", w)
	}
	if !r.notes.Changed("plan", b.String()) {
		return
	}
	for _, pe := range p.Pending {
		if pe.Name != "" { // an ENI in IMDS without a link is normal (detaching, or another netns)
			r.log.Info("ENI not configured", "iface", pe.Name, "mac", pe.MAC, "reason", pe.Reason)
		}
	}
	for _, ir := range report.Interfaces {
		switch ir.Outcome {
		case core.LeftAlone:
			r.log.Info("ENI left alone", "iface", ir.Name, "mac", ir.MAC, "backend", r.backend.Name(), "reason", ir.Reason)
		case core.Deferred:
			r.log.Info("ENI not finished; retried at the next pass", "iface", ir.Name, "mac", ir.MAC, "waits for", ir.Reason)
		}
	}
	for _, w := range p.Warnings {
		r.log.Warn(w)
	}
}
