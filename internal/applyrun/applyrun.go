// Package applyrun is the skeleton every backend's Apply shares: which interfaces are present,
// one pass over the planned interfaces that stops when the context ends, the removal of what
// belongs to interfaces that are gone, one reload, and the report of what happened to each
// planned interface. Side effects go through an Executor, which in a dry run only records them.
package applyrun

import (
	"context"
	"errors"
	"fmt"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Present is what Apply must not treat as detached: the links, and every planned interface even
// if the caller's link list missed it (its configuration must not be written and removed in the
// same call).
type Present struct {
	Names map[string]bool
	MACs  map[string]bool
	// ByIndex names the links and planned interfaces by ifindex.
	ByIndex map[int]string
}

// NewPresent indexes the links and the planned interfaces.
func NewPresent(plan core.Plan, links []core.Link) Present {
	n := len(links) + len(plan.Interfaces)
	pr := Present{Names: make(map[string]bool, n), MACs: make(map[string]bool, n), ByIndex: make(map[int]string, n)}
	add := func(name, mac string, index int) {
		pr.Names[name] = true
		if mac != "" {
			pr.MACs[mac] = true
		}
		pr.ByIndex[index] = name
	}
	for _, l := range links {
		add(l.Name, l.MAC, l.Index)
	}
	for _, p := range plan.Interfaces {
		add(p.Name, p.MAC, p.Index)
	}
	return pr
}

// Configured is the outcome of an interface whose plan the manager runs, or Failed if err is set.
func Configured(err error) core.InterfaceReport {
	if err != nil {
		return Failed(err)
	}
	return core.InterfaceReport{Outcome: core.Configured}
}

// LeftAlone is the outcome of an interface the backend deliberately did not touch.
func LeftAlone(reason string) core.InterfaceReport {
	return core.InterfaceReport{Outcome: core.LeftAlone, Reason: reason}
}

// Deferred is the outcome of an interface configured as far as it can be, the rest waiting for
// what reason names; Failed if err is set (a real failure wins over a wait).
func Deferred(reason string, err error) core.InterfaceReport {
	if err != nil {
		return Failed(err)
	}
	return core.InterfaceReport{Outcome: core.Deferred, Reason: reason}
}

// Failed is the outcome of an interface whose plan could not be applied.
func Failed(err error) core.InterfaceReport {
	return core.InterfaceReport{Outcome: core.Failed, Err: err}
}

// Steps are one backend's parts of Apply.
type Steps struct {
	// Interface applies one planned interface and says what happened to it (Name and MAC are
	// filled in by Run).
	Interface func(ctx context.Context, p core.InterfacePlan, ch *core.Changes) core.InterfaceReport
	// Detached removes the configuration of interfaces that are not present any more. Optional.
	Detached func(ctx context.Context, present Present, ch *core.Changes) error
	// Reload makes the manager take what changed, once for all interfaces. Optional.
	Reload func(ctx context.Context, ch *core.Changes) error
	// SkipUnchanged reports the interfaces WithUnchanged names as Configured without calling
	// Interface for them. Only for backends whose Detached and Reload do not depend on Interface
	// having run for every interface.
	SkipUnchanged bool
}

// Run applies every planned interface in plan order, then removes the detached ones'
// configuration and reloads. Once ctx ends, the interfaces not reached are Failed with ctx's
// error, and nothing is removed or reloaded. The error joins the interfaces' errors with those
// of the shared steps; backend prefixes the context error.
func Run(ctx context.Context, backend string, plan core.Plan, links []core.Link, s Steps) (core.Report, error) {
	var rep core.Report
	var errs []error
	cancelled := false
	var skip map[string]bool
	if s.SkipUnchanged {
		skip = unchanged(ctx)
	}
	for _, p := range plan.Interfaces {
		var ir core.InterfaceReport
		if err := ctx.Err(); err != nil {
			cancelled = true
			ir = Failed(fmt.Errorf("%s: apply stopped before %s: %w", backend, p.Name, err))
		} else if skip[p.MAC] {
			ir = Configured(nil) // applied and settled with this very plan by the last pass
		} else {
			ir = s.Interface(ctx, p, &rep.Changes)
		}
		ir.Name, ir.MAC = p.Name, p.MAC
		if ir.Outcome == core.Failed {
			errs = append(errs, ir.Err)
		}
		rep.Interfaces = append(rep.Interfaces, ir)
	}
	if cancelled {
		return rep, errors.Join(errs...)
	}
	if s.Detached != nil {
		errs = append(errs, s.Detached(ctx, NewPresent(plan, links), &rep.Changes))
	}
	if s.Reload != nil {
		errs = append(errs, s.Reload(ctx, &rep.Changes))
	}
	return rep, errors.Join(errs...)
}

// FailAll is the report of an Apply that could not start (the manager's state could not be
// read): every planned interface failed with err.
func FailAll(plan core.Plan, err error) (core.Report, error) {
	var rep core.Report
	for _, p := range plan.Interfaces {
		ir := Failed(err)
		ir.Name, ir.MAC = p.Name, p.MAC
		rep.Interfaces = append(rep.Interfaces, ir)
	}
	return rep, err
}
