package reconcile

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

var (
	ens6Rule   = core.Rule{Family: core.IPv4, From: netip.MustParsePrefix("10.0.1.10/32"), Table: 10001, Priority: 10001}
	orphanRule = core.Rule{Family: core.IPv4, From: netip.MustParsePrefix("10.0.2.10/32"), Table: 10002, Priority: 10002}
	// In the band but of a shape we never write (table ≠ priority): someone else's.
	foreignInBand = core.Rule{Family: core.IPv4, From: netip.MustParsePrefix("10.0.2.10/32"), Table: 254, Priority: 10002}
)

// An ENI detached while the agent was stopped sends the next agent no event, and it has no
// memory of it: a full pass removes the rules of ours (table = priority, in the band) whose table
// belongs to no ENI with a link, and only those. (networkd keeps the detached ENI's rule: its
// files went without a reload.)
func TestAFullPassRemovesRulesOfENIsDetachedWhileStopped(t *testing.T) {
	kernel := &fakeKernel{links: twoLinks(), rules: []core.Rule{ens6Rule, orphanRule, foreignInBand}}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	if _, err := r.Once(context.Background(), Pass{Reason: "start", Fetch: true, Full: true}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kernel.deleted, []core.Rule{orphanRule}) {
		t.Errorf("deleted %v, want only the orphan %v", kernel.deleted, orphanRule)
	}
}

// While a link with an ENI driver is there that IMDS does not list yet, its table is unknown: it
// may be the orphan's. Nothing is removed until it is known.
func TestOrphanRulesAreKeptWhileALinkIsUnknown(t *testing.T) {
	kernel := &fakeKernel{links: threeLinks(), rules: []core.Rule{ens6Rule, orphanRule}}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, kernel, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	if _, err := r.Once(context.Background(), Pass{Reason: "start", Fetch: true, Full: true}); err != nil {
		t.Fatal(err)
	}
	if len(kernel.deleted) != 0 {
		t.Errorf("deleted %v while ens7 is not listed in IMDS", kernel.deleted)
	}
}

// An ENI that IMDS lists with a link present keeps its table's rules even when it is not planned
// (left to the VPC CNI, excluded, left alone by the backend): they are not orphans.
func TestRulesOfAnENIPresentButNotPlannedAreKept(t *testing.T) {
	opts := core.DefaultPlanOptions()
	opts.Exclude = []string{"ens6"}
	kernel := &fakeKernel{links: twoLinks(), rules: []core.Rule{ens6Rule}}
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, kernel, &fakeBackend{}, opts, nil)
	if _, err := r.Once(context.Background(), Pass{Reason: "start", Fetch: true, Full: true}); err != nil {
		t.Fatal(err)
	}
	if len(kernel.deleted) != 0 {
		t.Errorf("deleted %v of the excluded (present) ens6", kernel.deleted)
	}
}
