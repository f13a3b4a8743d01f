package networkmanager

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// TestLabProfileTaggedSkipIsReportedLeftAlone: with the real NetworkManager, an ENI that runs a
// user's profile tagged org.ec2-net-utils.skip=yes is reported left alone, with the reason, and
// gets nothing from the backend: no profile of ours, no Reapply, none of the plan's rules.
func TestLabProfileTaggedSkipIsReportedLeftAlone(t *testing.T) {
	n := newNMLabWithUserProfile(t, "hands-off ens6")
	n.tagSkip("hands-off ens6")
	n.userActivate("hands-off ens6")
	n.waitFor("ens6 leased 10.99.1.10", n.hasAddr("ens6", "10.99.1.10/24"))

	p5, p6 := labPlans(t, n.h)
	plan := core.Plan{Interfaces: []core.InterfacePlan{p5, p6}}
	links := []core.Link{{Name: "ens5", Index: p5.Index, MAC: p5.MAC}, {Name: "ens6", Index: p6.Index, MAC: p6.MAC}}
	for pass := range 2 {
		if pass > 0 {
			// ens5 takes our profile at pass 0: Deferred while NM activates it.
			n.waitFor("ens5 activated", func() (bool, error) {
				return strings.HasPrefix(n.nmcli("-g", "GENERAL.STATE", "device", "show", "ens5"), "100"), nil
			})
		}
		rep, err := n.b.Apply(context.Background(), plan, links)
		n.must(err)
		n.total += rep.Reloads
		ir, ok := rep.Outcome(p6.MAC)
		if !ok || ir.Outcome != core.LeftAlone || !strings.Contains(ir.Reason, TagSkip) {
			t.Errorf("pass %d: ens6 %+v, want left alone because of %s", pass, ir, TagSkip)
		}
		if ir, _ := rep.Outcome(p5.MAC); pass > 0 && ir.Outcome != core.Configured {
			t.Errorf("pass %d: ens5 %+v, want configured", pass, ir)
		}
		if slices.Contains(rep.Written, ProfileID("ens6")) || slices.Contains(rep.Written, AppliedName("ens6")) {
			t.Errorf("pass %d: ens6 was written to: %v", pass, rep.Written)
		}
		if pass > 0 && !rep.Settled(plan) {
			t.Errorf("pass %d: not settled: %+v", pass, rep.Interfaces)
		}
	}
	if slices.Contains(n.rules(), "10001 from 10.99.1.20/32 lookup 10001") {
		t.Errorf("the plan's rule for ens6 is there: %v", n.rules())
	}
	if out := n.nmcli("-g", "NAME", "connection"); strings.Contains(out, ProfileID("ens6")) {
		t.Errorf("the agent made a profile for the skipped ENI:\n%s", out)
	}
	n.checkReloads()
}
