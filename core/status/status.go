// Package status compares the desired state (a core.Plan) with what the kernel has: for every
// ENI, its source rules, the routes of its table, its secondary addresses and its altnames, each
// ok, missing or unexpected; and the rules in the agent's priority band that are someone else's.
// Compare is pure; Observe reads the kernel through a narrow interface.
package status

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// State of one desired or observed item.
type State string

const (
	// OK: desired and present.
	OK State = "ok"
	// Missing: desired and absent. Makes the ENI, and the report, not ok.
	Missing State = "missing"
	// Unexpected: present, of the agent's kind (a rule in the ENI's table, a route in it, a host
	// address), and not desired. Shown; it does not make the ENI not ok, since other tools may
	// put it there (a CNI's secondary addresses).
	Unexpected State = "unexpected"
)

// Kinds of items.
const (
	KindRule    = "rule"
	KindRoute   = "route"
	KindAddress = "address"
	KindAltname = "altname"
)

// Item is one rule, route, address or altname of an ENI.
type Item struct {
	Kind  string `json:"kind"`
	What  string `json:"what"`
	State State  `json:"state"`
}

// ENI is the status of one planned ENI.
type ENI struct {
	Name         string `json:"name"`
	MAC          string `json:"mac"`
	InterfaceID  string `json:"interface_id"`
	Primary      bool   `json:"primary"`
	DeviceNumber int    `json:"device_number"`
	NetworkCard  int    `json:"network_card"`
	Table        int    `json:"table"`
	Priority     int    `json:"priority"`
	// Config is absent when the backend cannot say (none selected, or it is no core.Describer).
	Config *Config `json:"config,omitempty"`
	Items  []Item  `json:"items"`
	OK     bool    `json:"ok"`
}

// Config says which backend configures an ENI and what carries its configuration there.
type Config struct {
	Backend  string         `json:"backend"`
	Carriers []core.Carrier `json:"carriers"`
	// Error says why the backend could not tell.
	Error string `json:"error,omitempty"`
}

// Report is the whole comparison.
type Report struct {
	ENIs    []ENI          `json:"enis"`
	Pending []core.Pending `json:"pending"`
	Ignored []core.Ignored `json:"ignored"`
	// Stale are rules of the agent's form (table = priority, in the band) whose table belongs
	// to no ENI present: left by an ENI that is gone, until the agent's next pass removes them.
	Stale []core.Rule `json:"stale_rules"`
	// Foreign are other rules in the band (table ≠ priority): someone else's, never touched.
	Foreign []core.Rule `json:"foreign_rules"`
	// OK: nothing is missing and no stale rule remains.
	OK bool `json:"ok"`
}

// Observed is the kernel's side, as Observe reads it.
type Observed struct {
	// Rules are the source rules in the band core.OwnedPriorityMin..Max.
	Rules []core.Rule
	// Routes, by table, of the planned ENIs' tables.
	Routes map[int][]core.Route
	// Addresses and Altnames by interface index.
	Addresses map[int][]netip.Prefix
	Altnames  map[int][]string
	// Config by MAC, as Describe reads it.
	Config map[string]Config
}

// Kernel is what Observe needs; core/netlinkx.Handle has it.
type Kernel interface {
	Rules(lo, hi int) ([]core.Rule, error)
	RoutesInTable(table int) ([]core.Route, error)
	Addresses(link core.Link) ([]netip.Prefix, error)
	Altnames(link core.Link) ([]string, error)
}

// Observe reads what Compare needs for plan.
func Observe(plan core.Plan, k Kernel) (Observed, error) {
	obs := Observed{Routes: map[int][]core.Route{}, Addresses: map[int][]netip.Prefix{}, Altnames: map[int][]string{}}
	var err error
	if obs.Rules, err = k.Rules(core.OwnedPriorityMin, core.OwnedPriorityMax); err != nil {
		return Observed{}, fmt.Errorf("status: rules: %w", err)
	}
	for _, ifc := range plan.Interfaces {
		link := core.Link{Name: ifc.Name, Index: ifc.Index, MAC: ifc.MAC}
		if obs.Routes[ifc.Table], err = k.RoutesInTable(ifc.Table); err != nil {
			return Observed{}, fmt.Errorf("status: routes of table %d (%s): %w", ifc.Table, ifc.Name, err)
		}
		if obs.Addresses[ifc.Index], err = k.Addresses(link); err != nil {
			return Observed{}, fmt.Errorf("status: addresses of %s: %w", ifc.Name, err)
		}
		if obs.Altnames[ifc.Index], err = k.Altnames(link); err != nil {
			return Observed{}, fmt.Errorf("status: altnames of %s: %w", ifc.Name, err)
		}
	}
	return obs, nil
}

// Describe asks the backend what carries each planned ENI's configuration, for Observed.Config.
// A backend that cannot tell (none, or no core.Describer) gives nothing; one that fails for an
// ENI gives the error for that ENI, and status still shows the rest.
func Describe(ctx context.Context, plan core.Plan, b core.Backend) map[string]Config {
	d, ok := b.(core.Describer)
	if !ok {
		return nil
	}
	out := make(map[string]Config, len(plan.Interfaces))
	for _, ifc := range plan.Interfaces {
		c := Config{Backend: b.Name(), Carriers: []core.Carrier{}}
		carriers, err := d.Carriers(ctx, ifc)
		switch {
		case err != nil:
			c.Error = err.Error()
		case carriers != nil:
			c.Carriers = carriers
		}
		out[ifc.MAC] = c
	}
	return out
}

// Compare reports, for every ENI of plan, what obs has of it.
func Compare(plan core.Plan, obs Observed) Report {
	rep := Report{ENIs: []ENI{}, Pending: plan.Pending, Ignored: plan.Ignored, Stale: []core.Rule{}, Foreign: []core.Rule{}}
	tables := map[int]bool{}
	for _, ifc := range plan.Interfaces {
		tables[ifc.Table] = true
	}
	for _, r := range obs.Rules {
		switch {
		case !core.OwnsRule(r.Priority, r.Table):
			rep.Foreign = append(rep.Foreign, r)
		case !tables[r.Table]:
			rep.Stale = append(rep.Stale, r)
		}
	}
	sortRules(rep.Stale)
	sortRules(rep.Foreign)
	rep.OK = len(rep.Stale) == 0
	for _, ifc := range plan.Interfaces {
		e := ENI{Name: ifc.Name, MAC: ifc.MAC, InterfaceID: ifc.InterfaceID, Primary: ifc.Primary,
			DeviceNumber: ifc.DeviceNumber, NetworkCard: ifc.NetworkCard, Table: ifc.Table, Priority: ifc.Priority, Items: []Item{}}
		if c, ok := obs.Config[ifc.MAC]; ok {
			e.Config = &c
		}
		e.Items = append(e.Items, rules(ifc, obs.Rules)...)
		e.Items = append(e.Items, routes(ifc, obs.Routes[ifc.Table])...)
		e.Items = append(e.Items, addresses(ifc, obs.Addresses[ifc.Index])...)
		e.Items = append(e.Items, altnames(ifc, obs.Altnames[ifc.Index])...)
		e.OK = !slices.ContainsFunc(e.Items, func(it Item) bool { return it.State == Missing })
		rep.OK = rep.OK && e.OK
		rep.ENIs = append(rep.ENIs, e)
	}
	return rep
}

// Select keeps the ENIs named (interface name or MAC), and the pending and ignored ones named;
// everything when names is empty. OK is recomputed for what is kept.
func (r Report) Select(names []string) Report {
	if len(names) == 0 {
		return r
	}
	keep := func(name, mac string) bool { return slices.Contains(names, name) || slices.Contains(names, mac) }
	out := Report{ENIs: []ENI{}, Pending: []core.Pending{}, Ignored: []core.Ignored{}, Stale: r.Stale, Foreign: r.Foreign, OK: len(r.Stale) == 0}
	for _, e := range r.ENIs {
		if keep(e.Name, e.MAC) {
			out.ENIs = append(out.ENIs, e)
			out.OK = out.OK && e.OK
		}
	}
	for _, p := range r.Pending {
		if keep(p.Name, p.MAC) {
			out.Pending = append(out.Pending, p)
		}
	}
	for _, i := range r.Ignored {
		if keep(i.Name, i.MAC) {
			out.Ignored = append(out.Ignored, i)
		}
	}
	return out
}

func rules(ifc core.InterfacePlan, observed []core.Rule) []Item {
	var items []Item
	for _, want := range ifc.Rules {
		st := Missing
		if slices.ContainsFunc(observed, func(r core.Rule) bool { return sameRule(r, want) }) {
			st = OK
		}
		items = append(items, Item{KindRule, want.String(), st})
	}
	for _, r := range observed {
		if r.Table == ifc.Table && core.OwnsRule(r.Priority, r.Table) && !slices.ContainsFunc(ifc.Rules, func(w core.Rule) bool { return sameRule(r, w) }) {
			items = append(items, Item{KindRule, r.String(), Unexpected})
		}
	}
	return items
}

func sameRule(a, b core.Rule) bool {
	return a.Family == b.Family && a.From.Masked() == b.From.Masked() && a.Table == b.Table && a.Priority == b.Priority
}

func routes(ifc core.InterfacePlan, observed []core.Route) []Item {
	var items []Item
	matched := make([]bool, len(observed))
	for _, want := range ifc.Routes {
		st := Missing
		for i, r := range observed {
			if sameRoute(r, want) {
				st, matched[i] = OK, true
			}
		}
		items = append(items, Item{KindRoute, want.On(ifc.Name), st})
	}
	for i, r := range observed {
		if !matched[i] {
			items = append(items, Item{KindRoute, r.On(ifc.Name), Unexpected})
		}
	}
	return items
}

// sameRoute: a route via the RA-learned router matches any link-local gateway, since IMDS does
// not publish the router's address.
func sameRoute(got, want core.Route) bool {
	if got.Destination.Masked() != want.Destination.Masked() {
		return false
	}
	switch {
	case want.GatewayFromRA:
		return got.Gateway.IsLinkLocalUnicast() || got.GatewayFromRA
	case want.Gateway.IsValid():
		return got.Gateway == want.Gateway
	default:
		return !got.Gateway.IsValid()
	}
}

func addresses(ifc core.InterfacePlan, observed []netip.Prefix) []Item {
	var items []Item
	for _, want := range ifc.Addresses {
		st := Missing
		if slices.ContainsFunc(observed, func(p netip.Prefix) bool { return p.Addr() == want.Addr() }) {
			st = OK
		}
		items = append(items, Item{KindAddress, want.String(), st})
	}
	// Host addresses of the agent's kind (IPv4 /32) that are not planned; the DHCP address, IPv6
	// and link-local addresses are the manager's.
	for _, p := range observed {
		if p.Addr().Is4() && p.Bits() == 32 && p.Addr() != ifc.PrimaryIPv4 &&
			!slices.ContainsFunc(ifc.Addresses, func(w netip.Prefix) bool { return w.Addr() == p.Addr() }) {
			items = append(items, Item{KindAddress, p.String(), Unexpected})
		}
	}
	return items
}

func altnames(ifc core.InterfacePlan, observed []string) []Item {
	var items []Item
	for _, want := range ifc.Altnames {
		st := Missing
		if slices.Contains(observed, want) {
			st = OK
		}
		items = append(items, Item{KindAltname, want, st})
	}
	return items
}

// sortRules orders rules as `ip rule` lists them.
func sortRules(rs []core.Rule) {
	slices.SortFunc(rs, func(a, b core.Rule) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Family, b.Family), a.From.Addr().Compare(b.From.Addr()))
	})
}
