package reconcile

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/applyrun"
)

// attachIMDS is a fakeIMDS that can read only the ENIs of new links.
type attachIMDS struct {
	fakeIMDS
	attached [][]string // the macs of each Attached call
}

func (f *attachIMDS) Attached(ctx context.Context, macs []string) (core.Instance, error) {
	f.mu.Lock()
	f.attached = append(f.attached, macs)
	f.mu.Unlock()
	return f.Look(ctx)
}

// A pass that is full only because a link appeared reads only that link's ENI (and the listing);
// the start pass and a pass merged with a resync read everything.
func TestALinkAddedPassReadsOnlyTheNewENI(t *testing.T) {
	imds := &attachIMDS{fakeIMDS: fakeIMDS{answers: []answer{{inst: twoENIs()}}}}
	r := New(imds, &fakeKernel{links: twoLinks()}, &fakeBackend{}, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	for _, p := range []Pass{
		{Reason: "start", Fetch: true, Full: true},
		{Reason: "link added ens6", Fetch: true, Full: true, Added: "02:00:00:00:06:06"},
		{Reason: "resync, link added ens6", Fetch: true, Full: true},
	} {
		if _, err := r.Once(ctx, p); err != nil {
			t.Fatalf("%s: %v", p.Reason, err)
		}
	}
	if len(imds.attached) != 1 || len(imds.attached[0]) != 1 || imds.attached[0][0] != "02:00:00:00:06:06" {
		t.Errorf("Attached calls %v, want one for 02:00:00:00:06:06", imds.attached)
	}
	if len(imds.calls) != 2 || imds.calls[0] != nil || imds.calls[1] != nil {
		t.Errorf("full reads %d (reuse %v), want 2 without reuse: start and resync", len(imds.calls), imds.calls)
	}
}

func TestMergedPassesReadEverythingWhenOneMust(t *testing.T) {
	added := Pass{Full: true, Added: "a"}
	for _, tc := range []struct {
		a, b Pass
		want string
	}{
		{added, Pass{Full: true, Added: "b"}, "a b"},
		{added, Pass{Reason: "link renamed"}, "a"},
		{added, Pass{Reason: "resync", Full: true}, ""},
		{Pass{Reason: "resync", Full: true}, added, ""},
	} {
		if got := mergeAdded(tc.a, tc.b); got != tc.want {
			t.Errorf("mergeAdded(%+v, %+v) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}

// runBackend applies through applyrun with SkipUnchanged, recording which interfaces it touched.
type runBackend struct{ ran [][]string }

func (b *runBackend) Name() string { return "run" }
func (b *runBackend) Apply(ctx context.Context, p core.Plan, links []core.Link) (core.Report, error) {
	var ran []string
	rep, err := applyrun.Run(ctx, "run", p, links, applyrun.Steps{
		Interface: func(_ context.Context, ip core.InterfacePlan, _ *core.Changes) core.InterfaceReport {
			ran = append(ran, ip.Name)
			return applyrun.Configured(nil)
		},
		SkipUnchanged: true,
	})
	b.ran = append(b.ran, ran)
	return rep, err
}

// An attach applies only the new ENI in a backend that can skip the others; a full pass (start,
// resync, full refresh) still applies every ENI.
func TestAnAttachPassAppliesOnlyTheNewENI(t *testing.T) {
	three := twoENIs()
	three.ENIs = append(three.ENIs, core.ENI{MAC: "02:00:00:00:07:07", InterfaceID: "eni-7", DeviceNumber: 2,
		LocalIPv4s: []netip.Addr{netip.MustParseAddr("10.0.2.10")}, SubnetIPv4: netip.MustParsePrefix("10.0.2.0/24")})
	imds := &attachIMDS{fakeIMDS: fakeIMDS{answers: []answer{{inst: twoENIs()}, {inst: three}}}}
	kernel := &fakeKernel{links: twoLinks()}
	b := &runBackend{}
	r := New(imds, kernel, b, core.DefaultPlanOptions(), nil)
	ctx := context.Background()
	if _, err := r.Once(ctx, Pass{Reason: "start", Fetch: true, Full: true}); err != nil {
		t.Fatal(err)
	}
	kernel.links = append(kernel.links, core.Link{Name: "ens7", Index: 4, MAC: "02:00:00:00:07:07", Driver: "ena"})
	for _, p := range []Pass{
		{Reason: "link added ens7", Fetch: true, Full: true, Added: "02:00:00:00:07:07"},
		{Reason: "resync", Fetch: true, Full: true},
	} {
		if _, err := r.Once(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]string{{"ens5", "ens6"}, {"ens7"}, {"ens5", "ens6", "ens7"}}
	if !reflect.DeepEqual(b.ran, want) {
		t.Errorf("interfaces applied per pass %v, want %v", b.ran, want)
	}
}

// A refresh that finds a new address on one ENI applies that ENI only; a full refresh applies all.
func TestARefreshAppliesOnlyTheChangedENI(t *testing.T) {
	more := twoENIs()
	more.ENIs[1].LocalIPv4s = append(more.ENIs[1].LocalIPv4s, netip.MustParseAddr("10.0.1.11"))
	imds := &fakeIMDS{answers: []answer{{inst: twoENIs()}, {inst: more}}}
	b := &runBackend{}
	r := New(imds, &fakeKernel{links: twoLinks()}, b, core.DefaultPlanOptions(), nil)
	for _, p := range []Pass{{Reason: "start", Fetch: true, Full: true}, {Reason: "refresh", Fetch: true}, {Reason: "refresh", Fetch: true, Full: true}} {
		if _, err := r.Once(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]string{{"ens5", "ens6"}, {"ens6"}, {"ens5", "ens6"}}
	if !reflect.DeepEqual(b.ran, want) {
		t.Errorf("interfaces applied per pass %v, want %v", b.ran, want)
	}
}
