package ifcfg

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

type countingKernel struct {
	*fakeKernel
	dumps, ensures int
}

func (k *countingKernel) Rules(lo, hi int) ([]core.Rule, error) {
	k.dumps++
	return k.fakeKernel.Rules(lo, hi)
}

func (k *countingKernel) EnsureRules(want []core.Rule) ([]core.Rule, error) {
	k.ensures++ // the kernel's EnsureRules dumps every rule too
	return k.fakeKernel.EnsureRules(want)
}

// A pass over many ENIs dumps the rules once, and asks the kernel to add only what is missing:
// linear in the ENIs, where each ENI used to dump every rule twice (issue #16).
func TestAPassDumpsTheRulesOnce(t *testing.T) {
	inner := &countingKernel{fakeKernel: newFakeKernel()}
	k := &passKernel{Kernel: inner}
	rulesOf := func(eni int) []core.Rule {
		var rs []core.Rule
		for a := range 54 {
			rs = append(rs, core.Rule{Family: core.IPv4, From: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.%d/32", eni, a+1)),
				Table: 10001 + eni, Priority: 10001 + eni})
		}
		return rs
	}
	for eni := range 32 {
		if eni < 31 { // all but the last ENI are configured already
			if _, err := inner.fakeKernel.EnsureRules(rulesOf(eni)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for eni := range 32 {
		added, err := k.EnsureRules(rulesOf(eni))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 54, false: 0}[eni == 31]; len(added) != want {
			t.Errorf("ENI %d: added %d rules, want %d", eni, len(added), want)
		}
		have, err := k.Rules(10001+eni, 10001+eni)
		if err != nil || len(have) != 54 {
			t.Errorf("ENI %d: Rules gave %d rules (%v), want 54", eni, len(have), err)
		}
	}
	if inner.dumps != 1 || inner.ensures != 1 {
		t.Errorf("%d rule dumps and %d kernel EnsureRules for 32 ENIs, want 1 and 1 (the new ENI)", inner.dumps, inner.ensures)
	}
	// A deletion is seen by the next question.
	if err := k.DeleteRules(rulesOf(3)[:4]); err != nil {
		t.Fatal(err)
	}
	if have, _ := k.Rules(10004, 10004); len(have) != 50 {
		t.Errorf("after deleting 4 rules: %d, want 50", len(have))
	}
}
