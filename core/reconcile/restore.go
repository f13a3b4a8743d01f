package reconcile

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
)

// Restored is what a restore put back.
type Restored struct {
	Rules     []core.Rule
	Routes    []core.Route
	Addresses []netip.Prefix
}

// Empty reports whether the restore found nothing missing.
func (r Restored) Empty() bool { return len(r.Rules)+len(r.Routes)+len(r.Addresses) == 0 }

// logArgs are the key-value pairs of a log line naming what was put back.
func (r Restored) logArgs() []any {
	var args []any
	if len(r.Rules) > 0 {
		args = append(args, "rules", fmtRules(r.Rules))
	}
	if len(r.Routes) > 0 {
		parts := make([]string, 0, len(r.Routes))
		for _, rt := range r.Routes {
			parts = append(parts, fmt.Sprintf("%s table %d", routeText(rt), rt.Table))
		}
		args = append(args, "routes", strings.Join(parts, ", "))
	}
	if len(r.Addresses) > 0 {
		parts := make([]string, 0, len(r.Addresses))
		for _, a := range r.Addresses {
			parts = append(parts, a.String())
		}
		args = append(args, "addresses", strings.Join(parts, ", "))
	}
	return args
}

func routeText(r core.Route) string {
	switch {
	case r.GatewayFromRA:
		return r.Destination.String() + " via the RA router"
	case r.Gateway.IsValid():
		return r.Destination.String() + " via " + r.Gateway.String()
	}
	return r.Destination.String()
}

// Restore puts back what the current plan configures and the kernel lacks: our source rules, the
// routes of our ENI tables and our secondary addresses. Whoever removed them (a person, another
// agent, a flush), the manager would only put them back at its next reconfiguration, which may
// never come. It never removes anything, and never looks at routes or addresses that are not in
// the plan (main, foreign tables, the DHCP address).
//
// removed are routes as they were deleted (RouteRemoved events): a missing route of the plan is
// put back with the attributes it had (metric, preferred source, protocol, onlink), that is as its
// manager had installed it, so that the manager adding it again finds it in place rather than
// adding a second one. Without one, a route gets the defaults (as the ifcfg backend writes it).
func (r *Reconciler) Restore(removed []core.Route) (Restored, error) {
	var out Restored
	if r.lastPlan == nil || r.dryRun {
		return out, nil
	}
	var want []core.Rule
	for _, ifc := range r.lastPlan.Interfaces {
		want = append(want, ifc.Rules...)
	}
	var errs []error
	if len(want) > 0 {
		added, err := r.kernel.EnsureRules(want)
		out.Rules = added
		if err != nil {
			errs = append(errs, fmt.Errorf("restore rules: %w", err))
		}
	}
	links, err := r.kernel.Links()
	if err != nil {
		return out, errors.Join(append(errs, fmt.Errorf("restore: list links: %w", err))...)
	}
	for _, ifc := range r.lastPlan.Interfaces {
		i := slices.IndexFunc(links, func(l core.Link) bool { return l.Index == ifc.Index && strings.EqualFold(l.MAC, ifc.MAC) })
		if i < 0 {
			continue // detached, or detaching: its routes and addresses went with the link
		}
		link := links[i]
		// Addresses first: a route put back with its preferred source needs it on the host.
		if len(ifc.Addresses) > 0 {
			added, err := r.kernel.EnsureAddresses(link, ifc.Addresses)
			out.Addresses = append(out.Addresses, added...)
			if err != nil {
				errs = append(errs, fmt.Errorf("restore addresses of %s: %w", ifc.Name, err))
			}
		}
		if len(ifc.Routes) > 0 {
			added, err := r.restoreRoutes(link, ifc, removed)
			out.Routes = append(out.Routes, added...)
			if err != nil {
				errs = append(errs, fmt.Errorf("restore routes of %s: %w", ifc.Name, err))
			}
		}
	}
	return out, errors.Join(errs...)
}

// restoreRoutes ensures the interface's routes, each as it was removed when removed has it. A
// route that cannot be put back so (its preferred source went too) is put back with the defaults.
// A route waiting for a router advertisement is not an error: the manager adds it with the RA.
func (r *Reconciler) restoreRoutes(link core.Link, ifc core.InterfacePlan, removed []core.Route) ([]core.Route, error) {
	routes := make([]core.Route, 0, len(ifc.Routes))
	templated := false
	for _, rt := range ifc.Routes {
		if i := slices.IndexFunc(removed, func(x core.Route) bool { return sameRoute(rt, x) }); i >= 0 {
			rt.Metric, rt.Source, rt.Protocol, rt.OnLink = removed[i].Metric, removed[i].Source, removed[i].Protocol, removed[i].OnLink
			templated = true
		}
		routes = append(routes, rt)
	}
	added, err := r.kernel.EnsureRoutes(link, routes)
	if _, rest := netlinkx.SplitRAWait(err); rest != nil && templated {
		var again []core.Route
		again, err = r.kernel.EnsureRoutes(link, ifc.Routes)
		added = append(added, again...)
	}
	_, err = netlinkx.SplitRAWait(err)
	return added, err
}

// sameRoute reports whether a route of the kernel (an event's) is the plan's route p: same table,
// destination and gateway (for a gateway learned from RAs, any link-local router).
func sameRoute(p, k core.Route) bool {
	if p.Table != k.Table || p.Destination.Masked() != k.Destination.Masked() {
		return false
	}
	if p.GatewayFromRA {
		return k.Gateway.IsLinkLocalUnicast()
	}
	return p.Gateway == k.Gateway
}

// plannedTable reports whether a table is the ENI table of an interface of the current plan.
func (r *Reconciler) plannedTable(table int) bool {
	if r.lastPlan == nil || !core.OwnsTable(table) {
		return false
	}
	return slices.ContainsFunc(r.lastPlan.Interfaces, func(i core.InterfacePlan) bool { return i.Table == table })
}

// plannedAddress reports whether an address is a secondary address of the current plan.
func (r *Reconciler) plannedAddress(a netip.Prefix) bool {
	if r.lastPlan == nil {
		return false
	}
	return slices.ContainsFunc(r.lastPlan.Interfaces, func(i core.InterfacePlan) bool { return slices.Contains(i.Addresses, a) })
}
