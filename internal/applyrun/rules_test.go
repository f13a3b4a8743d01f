package applyrun

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// fakeRules is a rule table: EnsureRules adds what is missing, DeleteRules removes exact matches.
type fakeRules struct{ rules []core.Rule }

func (f *fakeRules) Rules(lo, hi int) ([]core.Rule, error) {
	var out []core.Rule
	for _, r := range f.rules {
		if r.Priority >= lo && r.Priority <= hi {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeRules) EnsureRules(want []core.Rule) ([]core.Rule, error) {
	var added []core.Rule
	for _, r := range want {
		if !slices.ContainsFunc(f.rules, SameRule(r)) {
			f.rules = append(f.rules, r)
			added = append(added, r)
		}
	}
	return added, nil
}

func (f *fakeRules) DeleteRules(rules []core.Rule) error {
	for _, r := range rules {
		f.rules = slices.DeleteFunc(f.rules, SameRule(r))
	}
	return nil
}

func rule6(from string, prio, table int) core.Rule {
	return core.Rule{Family: core.IPv6, From: netip.MustParsePrefix(from), Priority: prio, Table: table}
}

func TestSyncRulesRemovesOnlyOurStaleRules(t *testing.T) {
	keep := rule6("fd00:99:0:1::10/128", 10001, 10001)
	stale := rule6("fd00:99:0:1::30/128", 10001, 10001)
	foreignPrio := rule6("fd00:99:0:1:1::/80", 1536, 10001) // VPC CNI pod rule into our table
	foreignTable := rule6("fd00:99:0:1::40/128", 10001, 200)
	added := rule6("fd00:99:0:1::20/128", 10001, 10001)
	k := &fakeRules{rules: []core.Rule{keep, stale, foreignPrio, foreignTable}}
	p := core.InterfacePlan{Name: "ens6", Priority: 10001, Table: 10001, Rules: []core.Rule{keep, added}}
	var ch core.Changes
	if err := SyncRules(k, p, &ch); err != nil {
		t.Fatal(err)
	}
	want := []core.Rule{keep, foreignPrio, foreignTable, added}
	if !slices.Equal(k.rules, want) {
		t.Errorf("rules after sync:\n got %v\nwant %v", k.rules, want)
	}
	if len(ch.Written) != 1 || len(ch.Removed) != 1 {
		t.Errorf("changes: written %v, removed %v; want one each", ch.Written, ch.Removed)
	}
}

func TestDeleteTableRulesKeepsForeignRules(t *testing.T) {
	ours := rule6("fd00:99:0:1::10/128", 10001, 10001)
	foreign := rule6("fd00:99:0:1:1::/80", 1536, 10001)
	k := &fakeRules{rules: []core.Rule{ours, foreign}}
	var ch core.Changes
	if err := DeleteTableRules(k, "ens6", 10001, &ch); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.rules, []core.Rule{foreign}) {
		t.Errorf("rules left: %v, want only the foreign one", k.rules)
	}
}
