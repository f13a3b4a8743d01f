package netlinkx

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Rules lists the source rules of both families whose priority is in [lo, hi].
// Equivalent to: ip rule show; ip -6 rule show, keeping priorities lo..hi.
//
// Only plain source rules are reported ("from <prefix> lookup <table>", "from all" as 0.0.0.0/0
// or ::/0): a rule with any other selector or action (iif, fwmark, to, not, goto, blackhole, ...)
// is never one we wrote, so it is left out rather than squeezed into a core.Rule that would
// describe a different rule.
func (h *Handle) Rules(lo, hi int) ([]core.Rule, error) {
	all, err := h.sourceRules()
	if err != nil {
		return nil, err
	}
	var out []core.Rule
	for _, r := range all {
		if r.Priority >= lo && r.Priority <= hi {
			out = append(out, r)
		}
	}
	return out, nil
}

// EnsureRules adds the rules of want that the kernel lacks (same family, from, table and
// priority) and returns those it added. It never deletes, so foreign rules — the VPC CNI's, a
// user's, networkd's — survive whatever their priority. Rules are added with proto static, as
// networkd's own rules, so "ip rule" shows they were configured rather than learned.
// Equivalent to: ip rule add from <from> lookup <table> priority <priority> proto static,
// for each missing rule.
func (h *Handle) EnsureRules(want []core.Rule) (added []core.Rule, err error) {
	have, err := h.sourceRules()
	if err != nil {
		return nil, err
	}
	present := make(map[ruleKey]bool, len(have))
	for _, r := range have {
		present[keyOf(r)] = true
	}
	var errs []error
	for _, r := range want {
		if present[keyOf(r)] {
			continue
		}
		nr, err := toNetlinkRule(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		nr.Protocol = unix.RTPROT_STATIC
		err = h.nl.RuleAdd(nr)
		switch {
		case err == nil:
			added = append(added, r)
		case errors.Is(err, unix.EEXIST):
			// Added concurrently (a manager restoring its rules): present is all we want.
		default:
			errs = append(errs, fmt.Errorf("netlinkx: add rule %s: %w", r, err))
			continue
		}
		present[keyOf(r)] = true
	}
	return added, errors.Join(errs...)
}

// DeleteRules deletes exactly these rules; a rule that is already gone is not an error. Only
// backends that own their rules directly (ifcfg) and the reconciler's detach cleanup use it.
// Equivalent to: ip rule del from <from> lookup <table> priority <priority> proto <proto>.
//
// The kernel treats selectors absent from a delete request as wildcards and removes the first
// rule that matches, so a request for "10001: from X lookup 10001" could remove a foreign
// "10001: from X iif lo lookup 10001" instead. Each rule is therefore looked up in a dump first:
// the request carries the protocol of the plain rule found there (the kernel compares it), and a
// rule is not deleted at all while a foreign rule with the same priority, table and source exists.
func (h *Handle) DeleteRules(rules []core.Rule) error {
	all, err := retryDump("list rules", func() ([]netlink.Rule, error) {
		return h.nl.RuleList(netlink.FAMILY_ALL)
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rules {
		nr, err := toNetlinkRule(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		proto, found, ambiguous := lookupRule(all, r)
		switch {
		case !found:
			continue // already gone
		case ambiguous:
			errs = append(errs, fmt.Errorf("netlinkx: not deleting rule %s: a foreign rule with the same priority, table "+
				"and source would match the request", r))
			continue
		}
		nr.Protocol = proto
		if err := h.nl.RuleDel(nr); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("netlinkx: delete rule %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// lookupRule finds the plain rule r in a dump: its protocol, whether it is there, and whether a
// non-plain rule with the same priority, table and source is there too.
func lookupRule(all []netlink.Rule, r core.Rule) (proto uint8, found, ambiguous bool) {
	for _, k := range all {
		if k.Priority != r.Priority || k.Table != r.Table {
			continue
		}
		if cr, plain := fromNetlinkRule(k); plain {
			if keyOf(cr) == keyOf(r) {
				proto, found = k.Protocol, true
			}
			continue
		}
		if sameSource(k, r) {
			ambiguous = true
		}
	}
	return proto, found, ambiguous
}

// sameSource reports whether a (non-plain) rule has r's family and source.
func sameSource(k netlink.Rule, r core.Rule) bool {
	fam := netlink.FAMILY_V4
	if r.Family == core.IPv6 {
		fam = netlink.FAMILY_V6
	}
	if k.Family != fam {
		return false
	}
	if k.Src == nil {
		return r.From.Bits() == 0
	}
	p, ok := prefixOf(k.Src)
	return ok && p == r.From.Masked()
}

// sourceRules dumps both families and keeps the plain source rules.
func (h *Handle) sourceRules() ([]core.Rule, error) {
	all, err := retryDump("list rules", func() ([]netlink.Rule, error) {
		return h.nl.RuleList(netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, err
	}
	var out []core.Rule
	for _, r := range all {
		if cr, ok := fromNetlinkRule(r); ok {
			out = append(out, cr)
		}
	}
	return out, nil
}

// fromNetlinkRule converts a plain source rule; ok is false for any other shape.
func fromNetlinkRule(r netlink.Rule) (core.Rule, bool) {
	plain := r.Table > 0 && r.Dst == nil && r.IifName == "" && r.OifName == "" &&
		r.Mark == 0 && r.Mask == nil && r.Tos == 0 && r.TunID == 0 && r.Goto < 0 && r.Flow < 0 &&
		!r.Invert && r.IPProto == 0 && r.Dport == nil && r.Sport == nil && r.UIDRange == nil &&
		r.SuppressPrefixlen < 0 && r.SuppressIfgroup < 0
	if !plain {
		return core.Rule{}, false
	}
	var fam core.Family
	switch r.Family {
	case netlink.FAMILY_V4:
		fam = core.IPv4
	case netlink.FAMILY_V6:
		fam = core.IPv6
	default:
		return core.Rule{}, false
	}
	from := anyPrefix(fam)
	if r.Src != nil {
		p, ok := prefixOf(r.Src)
		if !ok {
			return core.Rule{}, false
		}
		from = p
	}
	return core.Rule{Family: fam, From: from, Table: r.Table, Priority: r.Priority}, true
}

func toNetlinkRule(r core.Rule) (*netlink.Rule, error) {
	fam := r.Family
	if r.From.IsValid() {
		fam = core.FamilyOf(r.From.Addr())
		if r.Family != 0 && r.Family != fam {
			return nil, fmt.Errorf("netlinkx: rule %s: from %s is not %s", r, r.From, r.Family)
		}
	}
	if fam != core.IPv4 && fam != core.IPv6 {
		return nil, fmt.Errorf("netlinkx: rule %s: no address family", r)
	}
	if r.Table <= 0 || r.Priority < 0 {
		return nil, fmt.Errorf("netlinkx: rule %s: table and priority must be set", r)
	}
	nr := netlink.NewRule()
	nr.Family = netlink.FAMILY_V4
	if fam == core.IPv6 {
		nr.Family = netlink.FAMILY_V6
	}
	nr.Table = r.Table
	nr.Priority = r.Priority
	if r.From.IsValid() && r.From.Bits() > 0 {
		nr.Src = ipNet(r.From)
	}
	return nr, nil
}

// ruleKey identifies a rule the way EnsureRules compares them. From is masked: the kernel
// matches "from 10.0.1.7/24" and "from 10.0.1.0/24" alike.
type ruleKey struct {
	family   core.Family
	from     netip.Prefix
	table    int
	priority int
}

func keyOf(r core.Rule) ruleKey {
	fam := r.Family
	from := r.From
	if from.IsValid() {
		fam = core.FamilyOf(from.Addr())
		from = from.Masked()
	} else {
		from = anyPrefix(fam)
	}
	return ruleKey{family: fam, from: from, table: r.Table, priority: r.Priority}
}

// anyPrefix is "from all" of a family.
func anyPrefix(f core.Family) netip.Prefix {
	if f == core.IPv6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}
