package reconcile

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func threeLinks() []core.Link {
	return append(twoLinks(), core.Link{Name: "ens7", Index: 4, MAC: "02:00:00:00:07:07", Driver: "ena"})
}

func threeENIs() core.Instance {
	inst := twoENIs()
	inst.ENIs = append(inst.ENIs, core.ENI{MAC: "02:00:00:00:07:07", InterfaceID: "eni-7", DeviceNumber: 2,
		LocalIPv4s: []netip.Addr{netip.MustParseAddr("10.0.2.10")}, SubnetIPv4: netip.MustParsePrefix("10.0.2.0/24")})
	return inst
}

// A refresh that reuses the snapshot does not list macs/, so it would never find an ENI whose
// link is there but that IMDS did not list when the link appeared: while such a link exists, a
// refresh looks first (a macs/ listing, and the new ENI once listed), then reads with reuse
// (issue #11, defects 1 and 3).
func TestALinkIMDSDoesNotListMakesEveryRefreshLookFirst(t *testing.T) {
	cases := []struct {
		name  string
		first answer // the answer of the pass that sees ens7 first
	}{
		{"listed late", answer{inst: twoENIs()}},
		{"IMDS down when the link appeared", answer{err: errors.New("connection refused")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}, c.first, {inst: twoENIs()}, {inst: threeENIs()}}}
			kernel := &fakeKernel{links: twoLinks()}
			backend := &fakeBackend{}
			r := New(imds, kernel, backend, core.DefaultPlanOptions(), nil)
			ctx := context.Background()
			_, _ = r.Once(ctx, Pass{Reason: "start", Fetch: true, Full: true})
			kernel.links = threeLinks()
			_, _ = r.Once(ctx, Pass{Reason: "link added ens7", Fetch: true, Full: true})
			if got := r.Unlisted(); len(got) != 1 || got[0].Name != "ens7" {
				t.Fatalf("Unlisted() = %v, want ens7", got)
			}
			for range 3 { // still unlisted, then listed, then an ordinary refresh
				if _, err := r.Once(ctx, Pass{Reason: "refresh", Fetch: true}); err != nil {
					t.Fatal(err)
				}
			}
			if slices.Contains(imds.calls[2:], nil) || imds.looks != 2 {
				t.Errorf("refreshes: reuse %v, %d look(s); want reuse every time, and a look while ens7 was unlisted (2)",
					imds.calls[2:], imds.looks)
			}
			if !r.Planned("02:00:00:00:07:07") {
				t.Error("ens7 not planned once IMDS lists it")
			}
		})
	}
}

// A link of an ENI driver that the user excluded, or of another driver, is not looked for.
func TestExcludedAndNonENILinksAreNotLookedFor(t *testing.T) {
	opts := core.DefaultPlanOptions()
	opts.Exclude = []string{"ens7"}
	links := append(threeLinks(), core.Link{Name: "docker0", Index: 5, MAC: "02:42:00:00:00:01", Driver: "bridge", Kind: "bridge"})
	r := New(&fakeIMDS{answers: []answer{{inst: twoENIs()}}}, &fakeKernel{links: links}, &fakeBackend{}, opts, nil)
	if _, err := r.Once(context.Background(), Pass{Fetch: true, Full: true}); err != nil {
		t.Fatal(err)
	}
	if got := r.Unlisted(); len(got) != 0 {
		t.Errorf("Unlisted() = %v, want none", got)
	}
}
