package core

import (
	"cmp"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
)

// maxPrefixAddresses caps how many addresses one delegated IPv4 prefix may expand into. EC2
// delegates /28s (16 addresses); a much larger prefix is a misconfiguration or bad data, and
// assigning thousands of addresses would hurt more than it helps.
const maxPrefixAddresses = 256

// NewPlan computes the desired state of every ENI present on the host. It is pure: the same
// inputs give the same plan, byte for byte, and it does no I/O.
func NewPlan(inst Instance, links []Link, opts PlanOptions) Plan {
	plan := Plan{Interfaces: []InterfacePlan{}, Pending: []Pending{}, Ignored: []Ignored{}}

	enis := make(map[string]ENI, len(inst.ENIs))
	for _, e := range inst.ENIs {
		enis[e.MAC] = e
	}
	problems := make(map[string]ENIProblem, len(inst.Problems))
	for _, p := range inst.Problems {
		problems[p.MAC] = p
	}
	drivers := toSet(opts.Drivers)

	sorted := slices.Clone(links)
	slices.SortFunc(sorted, func(a, b Link) int { return cmp.Compare(a.Index, b.Index) })

	claimed := map[string]string{} // MAC -> link name that got it
	for _, l := range sorted {
		mac := strings.ToLower(l.MAC)
		eni, inIMDS := enis[mac]
		problem, hasProblem := problems[mac]
		known := inIMDS || hasProblem
		switch {
		case mac == "":
			continue
		case !drivers[l.Driver]:
			// A VLAN on an ENI shares the ENI's MAC: say why it is left alone. Links that are
			// neither in IMDS nor of an ENI driver (lo, docker0, container veths) are not ENIs.
			if known {
				plan.Ignored = append(plan.Ignored, Ignored{Name: l.Name, MAC: mac,
					Reason: fmt.Sprintf("driver %q (kind %q) is not in [interfaces] drivers", l.Driver, l.Kind)})
			}
			continue
		case excluded(opts.Exclude, l.Name, mac):
			plan.Ignored = append(plan.Ignored, Ignored{Name: l.Name, MAC: mac, Reason: "excluded by [interfaces] exclude"})
			claimed[mac] = l.Name
			continue
		case claimed[mac] != "":
			plan.Ignored = append(plan.Ignored, Ignored{Name: l.Name, MAC: mac,
				Reason: fmt.Sprintf("MAC is already used by %s", claimed[mac])})
			continue
		case !known:
			plan.Ignored = append(plan.Ignored, Ignored{Name: l.Name, MAC: mac, Reason: "MAC is not an ENI of this instance in IMDS"})
			continue
		}
		claimed[mac] = l.Name
		if reason := leftToOthers(opts, mac == strings.ToLower(inst.PrimaryMAC)); reason != "" {
			plan.Ignored = append(plan.Ignored, Ignored{Name: l.Name, MAC: mac, Reason: reason})
			continue
		}
		if hasProblem {
			plan.Pending = append(plan.Pending, Pending{MAC: mac, Name: l.Name, Reason: problemReason(problem)})
			continue
		}
		ip, warnings := planInterface(eni, l, mac == strings.ToLower(inst.PrimaryMAC), opts)
		plan.Interfaces = append(plan.Interfaces, ip)
		plan.Warnings = append(plan.Warnings, warnings...)
	}

	for _, e := range inst.ENIs {
		if claimed[e.MAC] == "" {
			plan.Pending = append(plan.Pending, Pending{MAC: e.MAC, Reason: "no local link with this MAC yet"})
		}
	}
	for _, p := range inst.Problems {
		if claimed[p.MAC] == "" {
			plan.Pending = append(plan.Pending, Pending{MAC: p.MAC, Reason: problemReason(p)})
		}
	}

	slices.SortFunc(plan.Interfaces, func(a, b InterfacePlan) int {
		return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.MAC, b.MAC))
	})
	slices.SortFunc(plan.Pending, func(a, b Pending) int { return cmp.Compare(a.MAC, b.MAC) })
	slices.SortFunc(plan.Ignored, func(a, b Ignored) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.MAC, b.MAC))
	})
	return plan
}

// leftToOthers says why an ENI present on the host is not the agent's to configure on this kind
// of host, or "" when it is. On a VPC CNI host the primary ENI stays ours: the manager keeps its
// DHCP lease and the agent its routing, only its pod addresses are left out (planInterface).
func leftToOthers(opts PlanOptions, primary bool) string {
	switch {
	case opts.StandBack != "":
		return opts.StandBack
	case opts.VPCCNI != "" && !primary:
		return "the VPC CNI configures secondary ENIs itself (" + opts.VPCCNI + ")"
	}
	return ""
}

func problemReason(p ENIProblem) string {
	reason := strings.TrimPrefix(p.Reason, p.MAC+": ") // Pending carries the MAC already
	if p.Kind == ProblemNotPropagated {
		return "not propagated in IMDS yet: " + reason
	}
	return "invalid IMDS data: " + reason
}

func planInterface(eni ENI, l Link, primary bool, opts PlanOptions) (InterfacePlan, []string) {
	table := TableFor(eni.NetworkCard, eni.DeviceNumber)
	p := InterfacePlan{
		Name:             l.Name,
		Index:            l.Index,
		MAC:              eni.MAC,
		InterfaceID:      eni.InterfaceID,
		Primary:          primary,
		DeviceNumber:     eni.DeviceNumber,
		NetworkCard:      eni.NetworkCard,
		Table:            table,
		Priority:         table,
		Metric:           MetricFor(eni.NetworkCard, eni.DeviceNumber),
		MainDefaultRoute: primary || opts.MainDefaultRoute,
		IPv4:             eni.SubnetIPv4.IsValid() && len(eni.LocalIPv4s) > 0,
		// Like 2.x, IPv6 routing is set up only when the ENI has IPv6 addresses or prefixes to
		// route: a dual-stack subnet alone gives an ENI without IPv6 addresses nothing to steer.
		IPv6:      len(eni.SubnetIPv6) > 0 && (len(eni.IPv6s) > 0 || len(eni.IPv6Prefixes) > 0),
		Rules:     []Rule{},
		Addresses: []netip.Prefix{},
		Routes:    []Route{},
		Altnames:  []string{},
		MTU:       opts.MTU,
	}
	var warnings []string
	if p.IPv4 {
		p.PrimaryIPv4 = eni.LocalIPv4s[0]
		p.SubnetIPv4 = eni.SubnetIPv4
	}

	// On a VPC CNI host every secondary IPv4 address and every delegated prefix may be a pod's:
	// the CNI routes them with its own rules (512, 1536), and a /32 of ours on the host would
	// swallow the pods' replies. The ENI's primary IPv4 and its IPv6 addresses stay the host's.
	localIPv4s, ipv4Prefixes, ipv6Prefixes := eni.LocalIPv4s, eni.IPv4Prefixes, eni.IPv6Prefixes
	if opts.VPCCNI != "" {
		localIPv4s, ipv4Prefixes, ipv6Prefixes = eni.LocalIPv4s[:min(1, len(eni.LocalIPv4s))], nil, nil
	}

	// The primary ENI gets no source rules by default: its traffic follows the main table, which
	// keeps Docker bridge hairpin traffic to host ports working (amazon-ec2-net-utils #97).
	if !primary || opts.PrimaryRules {
		if p.IPv4 {
			// IMDS order, primary address first, as 2.x writes them: stable and meaningful.
			for _, a := range localIPv4s {
				p.Rules = append(p.Rules, Rule{Family: IPv4, From: netip.PrefixFrom(a, 32), Table: table, Priority: table})
			}
			for _, pfx := range ipv4Prefixes {
				p.Rules = append(p.Rules, Rule{Family: IPv4, From: pfx, Table: table, Priority: table})
			}
		}
		if p.IPv6 {
			for _, a := range eni.IPv6s {
				p.Rules = append(p.Rules, Rule{Family: IPv6, From: netip.PrefixFrom(a, 128), Table: table, Priority: table})
			}
			for _, pfx := range ipv6Prefixes {
				p.Rules = append(p.Rules, Rule{Family: IPv6, From: pfx, Table: table, Priority: table})
			}
		}
		p.Rules = dedupeRules(p.Rules)
	}

	if p.IPv4 {
		// local-ipv4s line 1 is the DHCP address; never sort before dropping it (#63/#65).
		seen := map[netip.Addr]bool{eni.LocalIPv4s[0]: true}
		var addrs []netip.Addr
		for _, a := range localIPv4s[1:] {
			if !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
		if opts.NoSecondaryAddresses {
			// Another agent owns the secondary addresses; their rules above stay.
			addrs = nil
		} else if opts.AssignPrefixAddresses {
			for _, pfx := range ipv4Prefixes {
				if n := 1 << (32 - pfx.Bits()); n > maxPrefixAddresses {
					warnings = append(warnings, fmt.Sprintf("%s: delegated prefix %s has %d addresses, more than %d: its addresses are not assigned",
						l.Name, pfx, n, maxPrefixAddresses))
					continue
				}
				for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
					if !seen[a] {
						seen[a] = true
						addrs = append(addrs, a)
					}
				}
			}
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		for _, a := range addrs {
			p.Addresses = append(p.Addresses, netip.PrefixFrom(a, 32))
		}

		router := eni.SubnetIPv4.Masked().Addr().Next() // the VPC router is always the subnet's base + 1
		p.Routes = append(p.Routes,
			Route{Table: table, Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: router},
			Route{Table: table, Destination: eni.SubnetIPv4.Masked()})
	}
	if p.IPv6 && !opts.NoSecondaryAddresses {
		// EC2's DHCPv6 hands out the first ipv6s entry only; the others would be routed by their
		// rules but answer nothing. amazon-ec2-net-utils leaves them unassigned; we assign them as
		// /128s, as IPv4 secondaries are /32s.
		seen := map[netip.Addr]bool{}
		var addrs []netip.Addr
		for _, a := range eni.IPv6s[min(1, len(eni.IPv6s)):] {
			if !seen[a] && a != eni.IPv6s[0] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		for _, a := range addrs {
			p.Addresses = append(p.Addresses, netip.PrefixFrom(a, 128))
		}
	}
	if p.IPv6 {
		p.Routes = append(p.Routes, Route{Table: table, Destination: netip.MustParsePrefix("::/0"), GatewayFromRA: true})
		for _, s := range eni.SubnetIPv6 {
			p.Routes = append(p.Routes, Route{Table: table, Destination: s.Masked()})
		}
	}

	if eni.InterfaceID != "" {
		p.Altnames = append(p.Altnames, eni.InterfaceID)
	}
	p.Altnames = append(p.Altnames, DeviceNumberAltname(eni.NetworkCard, eni.DeviceNumber))
	return p, warnings
}

func dedupeRules(rules []Rule) []Rule {
	seen := map[netip.Prefix]bool{}
	out := rules[:0]
	for _, r := range rules {
		if !seen[r.From] {
			seen[r.From] = true
			out = append(out, r)
		}
	}
	return out
}

// excluded reports whether an exclude entry names the link: a MAC (it has colons, which no
// interface name has) equals mac exactly; any other entry is a shell pattern of interface names
// (path.Match, so a plain name matches itself). Names are case-sensitive (eth1 and Eth1 are two
// links); MACs are compared in the lower-case form both sides are in.
func excluded(entries []string, name, mac string) bool {
	for _, e := range entries {
		if strings.Contains(e, ":") {
			if e == mac {
				return true
			}
		} else if ok, _ := path.Match(e, name); ok {
			return true
		}
	}
	return false
}

func toSet(items []string) map[string]bool {
	s := make(map[string]bool, len(items))
	for _, it := range items {
		s[it] = true
	}
	return s
}
