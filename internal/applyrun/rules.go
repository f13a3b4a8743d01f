package applyrun

import (
	"fmt"
	"slices"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// RuleKernel is the part of netlink rule handling the backends that put source rules in the
// kernel themselves share; *netlinkx.Handle implements it.
type RuleKernel interface {
	Rules(lo, hi int) ([]core.Rule, error)
	EnsureRules(want []core.Rule) ([]core.Rule, error)
	DeleteRules(rules []core.Rule) error
}

// SyncRules makes the kernel hold the plan's source rules and removes ours at the ENI's priority
// into its table that the plan no longer has (a secondary address or prefix unassigned). Ours
// means priority == table == the ENI's table (core.OwnsRule): the VPC CNI's rules into the same
// table at other priorities, and any rule into another table, are never touched. The kernel is
// dumped first and rules are compared exactly (family, from, table, priority); DeleteRules then
// deletes each with the protocol found in a dump and refuses one a foreign rule with the same
// selectors would shadow. Changes are recorded in ch as "<iface>: rule …".
func SyncRules(k RuleKernel, p core.InterfacePlan, ch *core.Changes) error {
	added, err := k.EnsureRules(p.Rules)
	for _, r := range added {
		ch.Written = append(ch.Written, fmt.Sprintf("%s: rule %s", p.Name, r))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	have, err := k.Rules(p.Priority, p.Priority)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	var stale []core.Rule
	for _, r := range have {
		if r.Table != p.Table || !core.OwnsRule(r.Priority, r.Table) || slices.ContainsFunc(p.Rules, SameRule(r)) {
			continue
		}
		stale = append(stale, r)
	}
	if len(stale) == 0 {
		return nil
	}
	if err := k.DeleteRules(stale); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	for _, r := range stale {
		ch.Removed = append(ch.Removed, fmt.Sprintf("%s: rule %s", p.Name, r))
	}
	return nil
}

// DeleteTableRules removes our rules into table (priority == table), whatever their source: the
// cleanup of an ENI table no longer planned. Foreign rules into it stay.
func DeleteTableRules(k RuleKernel, iface string, table int, ch *core.Changes) error {
	have, err := k.Rules(table, table)
	if err != nil {
		return fmt.Errorf("%s: %w", iface, err)
	}
	var ours []core.Rule
	for _, r := range have {
		if core.OwnsRule(r.Priority, r.Table) && r.Table == table {
			ours = append(ours, r)
		}
	}
	if len(ours) == 0 {
		return nil
	}
	if err := k.DeleteRules(ours); err != nil {
		return fmt.Errorf("%s: %w", iface, err)
	}
	for _, r := range ours {
		ch.Removed = append(ch.Removed, fmt.Sprintf("%s: rule %s", iface, r))
	}
	return nil
}

// SameRule matches a rule by family, masked source, table and priority.
func SameRule(a core.Rule) func(core.Rule) bool {
	return func(b core.Rule) bool {
		return a.Family == b.Family && a.From.Masked() == b.From.Masked() && a.Table == b.Table && a.Priority == b.Priority
	}
}
