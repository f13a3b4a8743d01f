package ifcfg

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Knobs are the amazon-ec2-net-utils 1.x settings an administrator keeps in ifcfg-<iface>. They
// win over the configuration file for their interface. A nil field is not set.
type Knobs struct {
	// Sync is EC2SYNC: no leaves the interface completely alone (like [interfaces] exclude).
	Sync *bool
	// MainRouteTable is MAINROUTETABLE: no keeps the ENI's default route out of the main table
	// (like [interfaces] main_default_route = false, for this ENI only).
	MainRouteTable *bool
	// ProvisionPrefixIPs is EC2PROVISIONPFXIPS: yes assigns every address of the ENI's delegated
	// IPv4 prefixes (like [interfaces] assign_prefix_addresses, for this ENI only).
	ProvisionPrefixIPs *bool
}

// knobKeys maps the ifcfg keys to the Knobs fields.
var knobKeys = map[string]func(*Knobs) **bool{
	"EC2SYNC":            func(k *Knobs) **bool { return &k.Sync },
	"MAINROUTETABLE":     func(k *Knobs) **bool { return &k.MainRouteTable },
	"EC2PROVISIONPFXIPS": func(k *Knobs) **bool { return &k.ProvisionPrefixIPs },
}

// ParseKnobs reads the knobs from an ifcfg file the way initscripts' shell would see them:
// KEY=value, optionally quoted, a comment or blank after it; the last assignment wins. An empty
// or unrecognised value leaves the knob unset (1.x writes "EC2PROVISIONPFXIPS=" by default).
func ParseKnobs(content []byte) Knobs {
	var k Knobs
	// Not bufio.Scanner: it stops at a line longer than 64 KiB, and the knobs after it would be
	// lost (found by FuzzParseKnobs).
	for b := range bytes.Lines(content) {
		line := strings.TrimSpace(string(b))
		key, value, ok := strings.Cut(line, "=")
		field, known := knobKeys[key]
		if !ok || !known {
			continue
		}
		if b, ok := parseBool(shellValue(value)); ok {
			*field(&k) = &b
		} else {
			*field(&k) = nil
		}
	}
	return k
}

// shellValue strips quotes and a trailing comment from the right-hand side of KEY=value.
func shellValue(v string) string {
	switch {
	case strings.HasPrefix(v, `"`):
		if end := strings.Index(v[1:], `"`); end >= 0 {
			return v[1 : end+1]
		}
	case strings.HasPrefix(v, `'`):
		if end := strings.Index(v[1:], `'`); end >= 0 {
			return v[1 : end+1]
		}
	}
	if i := strings.IndexAny(v, " \t#"); i >= 0 {
		v = v[:i]
	}
	return v
}

// parseBool accepts the spellings initscripts' is_true and is_false accept.
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "yes", "true", "y", "t", "1", "on":
		return true, true
	case "no", "false", "n", "f", "0", "off":
		return false, true
	}
	return false, false
}

// Apply returns the interface's plan with the knobs applied; ok is false when EC2SYNC=no says
// to leave the interface alone. It is idempotent, so a plan adjusted twice is adjusted once.
//
// MAINROUTETABLE has no effect on the primary ENI: its main-table default route belongs to
// initscripts' dhclient, as in 1.x. EC2PROVISIONPFXIPS works from the plan's source rules for
// the prefixes, so on the primary ENI it takes effect only with [interfaces] primary_rules (the
// planner gives the primary ENI no rules by default).
func (k Knobs) Apply(p core.InterfacePlan) (core.InterfacePlan, bool) {
	if k.Sync != nil && !*k.Sync {
		return p, false
	}
	if k.MainRouteTable != nil && !p.Primary {
		p.MainDefaultRoute = *k.MainRouteTable
	}
	if k.ProvisionPrefixIPs != nil && p.IPv4 {
		p.Addresses = prefixAddresses(p, *k.ProvisionPrefixIPs)
	}
	return p, true
}

// maxPrefixAddresses matches the planner's cap on addresses taken from one delegated prefix.
const maxPrefixAddresses = 256

// prefixAddresses returns the plan's secondary addresses with the addresses of its delegated IPv4
// prefixes added (assign) or taken out, sorted as the planner sorts them.
func prefixAddresses(p core.InterfacePlan, assign bool) []netip.Prefix {
	var prefixes []netip.Prefix
	for _, r := range p.Rules {
		if r.Family == core.IPv4 && !r.From.IsSingleIP() && r.From.Bits() > 0 {
			prefixes = append(prefixes, r.From.Masked())
		}
	}
	inPrefix := func(a netip.Prefix) bool {
		return slices.ContainsFunc(prefixes, func(pfx netip.Prefix) bool { return pfx.Contains(a.Addr()) })
	}
	out := slices.DeleteFunc(slices.Clone(p.Addresses), inPrefix)
	if !assign {
		return out
	}
	for _, pfx := range prefixes {
		if 1<<(32-pfx.Bits()) > maxPrefixAddresses {
			continue
		}
		for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
			if a != p.PrimaryIPv4 {
				out = append(out, netip.PrefixFrom(a, 32))
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return slices.Compact(out)
}

// Describe says which knobs are set, for logs.
func (k Knobs) Describe() string {
	var parts []string
	for _, kv := range []struct {
		name string
		v    *bool
	}{{"EC2SYNC", k.Sync}, {"MAINROUTETABLE", k.MainRouteTable}, {"EC2PROVISIONPFXIPS", k.ProvisionPrefixIPs}} {
		if kv.v != nil {
			parts = append(parts, fmt.Sprintf("%s=%s", kv.name, yesNo(*kv.v)))
		}
	}
	return strings.Join(parts, " ")
}
