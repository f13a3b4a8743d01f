package netlinkx

import (
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Selector is any rule of the kernel reduced to what tells one tenant of the rule table from
// another: priority, table, and its from/to selectors (zero when the rule has none).
type Selector struct {
	Priority int
	Table    int
	From, To netip.Prefix
}

// Selectors lists every rule of both families whose priority is in [lo, hi], whatever its
// shape — unlike Rules, which keeps only the plain source rules the agent itself writes.
// Equivalent to: ip rule show; ip -6 rule show, keeping priorities lo..hi.
func (h *Handle) Selectors(lo, hi int) ([]Selector, error) {
	all, err := retryDump("list rules", func() ([]netlink.Rule, error) {
		return h.nl.RuleList(netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, err
	}
	var out []Selector
	for _, r := range all {
		if r.Priority < lo || r.Priority > hi {
			continue
		}
		s := Selector{Priority: r.Priority, Table: r.Table}
		if r.Src != nil {
			s.From, _ = prefixOf(r.Src)
		}
		if r.Dst != nil {
			s.To, _ = prefixOf(r.Dst)
		}
		out = append(out, s)
	}
	return out, nil
}
