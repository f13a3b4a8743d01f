package ifcfg

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// passKernel is the Kernel for one Apply: it dumps the rules of the owned priority band once and
// answers every interface's EnsureRules and Rules from that dump, keeping it current with what
// it adds and deletes. Without it each interface dumped every rule twice (EnsureRules, then Rules
// for the stale ones): at 32 ENIs × 54 rules a pass that checks every ENI read 33 × 2 × 1 700
// rules, quadratic in the ENIs (issue #16). A rule someone else changes during the pass is seen
// by the next pass, as a rule changed just after it would be.
type passKernel struct {
	Kernel
	rules  map[ruleID]core.Rule // nil until loaded
	failed bool                 // the dump failed: pass everything through
}

type ruleID struct {
	family   core.Family
	from     netip.Prefix
	table    int
	priority int
}

func idOf(r core.Rule) ruleID { return ruleID{r.Family, r.From.Masked(), r.Table, r.Priority} }

func inBand(lo, hi int) bool { return lo >= core.OwnedPriorityMin && hi <= core.OwnedPriorityMax }

// withPassKernel makes b.kernel a passKernel until the returned function restores it. Callers
// hold b.mu.
func (b *Backend) withPassKernel() func() {
	orig := b.kernel
	b.kernel = &passKernel{Kernel: orig}
	return func() { b.kernel = orig }
}

func (k *passKernel) load() bool {
	if k.rules != nil || k.failed {
		return !k.failed
	}
	all, err := k.Kernel.Rules(core.OwnedPriorityMin, core.OwnedPriorityMax)
	if err != nil {
		k.failed = true
		return false
	}
	k.rules = make(map[ruleID]core.Rule, len(all))
	for _, r := range all {
		k.rules[idOf(r)] = r
	}
	return true
}

func (k *passKernel) Rules(lo, hi int) ([]core.Rule, error) {
	if !inBand(lo, hi) || !k.load() {
		return k.Kernel.Rules(lo, hi)
	}
	var out []core.Rule
	for _, r := range k.rules {
		if r.Priority >= lo && r.Priority <= hi {
			out = append(out, r)
		}
	}
	// In a stable order, as a dump would be: what is deleted is reported in this order.
	slices.SortFunc(out, func(a, b core.Rule) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Family, b.Family), a.From.Addr().Compare(b.From.Addr()),
			cmp.Compare(a.From.Bits(), b.From.Bits()))
	})
	return out, nil
}

// EnsureRules adds what the dump lacks; the kernel's EnsureRules still checks each against a
// fresh dump, but only when something is missing.
func (k *passKernel) EnsureRules(want []core.Rule) ([]core.Rule, error) {
	if !k.load() {
		return k.Kernel.EnsureRules(want)
	}
	var missing []core.Rule
	for _, r := range want {
		if _, ok := k.rules[idOf(r)]; !ok || !inBand(r.Priority, r.Priority) {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	added, err := k.Kernel.EnsureRules(missing)
	if err != nil {
		k.rules, k.failed = nil, false // reload: some may be in, some not
		return added, err
	}
	for _, r := range missing {
		if inBand(r.Priority, r.Priority) {
			k.rules[idOf(r)] = r
		}
	}
	return added, nil
}

func (k *passKernel) DeleteRules(rules []core.Rule) error {
	err := k.Kernel.DeleteRules(rules)
	k.rules, k.failed = nil, false // reload on the next question
	return err
}
