package reconcile

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func TestPlanCacheReusesOnlyForTheSameInputs(t *testing.T) {
	inst := core.Instance{PrimaryMAC: "02:00:00:00:00:01", ENIs: []core.ENI{
		{MAC: "02:00:00:00:00:01", DeviceNumber: 0, LocalIPv4s: []netip.Addr{netip.MustParseAddr("10.0.0.10")},
			SubnetIPv4: netip.MustParsePrefix("10.0.0.0/24")},
		{MAC: "02:00:00:00:00:02", DeviceNumber: 1, LocalIPv4s: []netip.Addr{netip.MustParseAddr("10.0.1.10")},
			SubnetIPv4: netip.MustParsePrefix("10.0.1.0/24")},
	}}
	links := []core.Link{{Name: "ens5", Index: 2, MAC: "02:00:00:00:00:01", Driver: "ena"},
		{Name: "ens6", Index: 3, MAC: "02:00:00:00:00:02", Driver: "ena"}}
	opts := core.DefaultPlanOptions()
	var c planCache
	first := c.get(inst, links, opts)

	// A new read of the same data: equal values, other slices.
	again := inst
	again.ENIs = slices.Clone(inst.ENIs)
	again.ENIs[1].LocalIPv4s = slices.Clone(inst.ENIs[1].LocalIPv4s)
	if got := c.get(again, slices.Clone(links), opts); &got.Interfaces[0] != &first.Interfaces[0] {
		t.Error("same inputs: planned again instead of reusing the plan")
	}

	changes := map[string]func() (core.Instance, []core.Link, core.PlanOptions){
		"secondary IP added": func() (core.Instance, []core.Link, core.PlanOptions) {
			i := again
			i.ENIs = slices.Clone(again.ENIs)
			i.ENIs[1].LocalIPv4s = append(slices.Clone(i.ENIs[1].LocalIPv4s), netip.MustParseAddr("10.0.1.11"))
			return i, links, opts
		},
		"link renamed": func() (core.Instance, []core.Link, core.PlanOptions) {
			l := slices.Clone(links)
			l[1].Name = "eth1"
			return inst, l, opts
		},
		"options changed": func() (core.Instance, []core.Link, core.PlanOptions) {
			o := opts
			o.PrimaryRules = true
			return inst, links, o
		},
	}
	for name, change := range changes {
		i, l, o := change()
		got := c.get(i, l, o)
		if want := core.NewPlan(i, l, o); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: cached plan differs from a fresh one", name)
		}
		c.get(inst, links, opts) // back to the first inputs
	}
}

// BenchmarkPlanReuse compares planning 32 ENIs × 50 addresses + 4 prefixes (what every refresh
// did) with recognising an unchanged snapshot (what a no-change refresh does now).
func BenchmarkPlanReuse(b *testing.B) {
	inst := core.Instance{PrimaryMAC: "02:00:00:00:00:00"}
	var links []core.Link
	for i := range 32 {
		e := core.ENI{MAC: fmt.Sprintf("02:00:00:00:00:%02x", i), DeviceNumber: i % 16, NetworkCard: i / 16,
			SubnetIPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 24)}
		for a := range 50 {
			e.LocalIPv4s = append(e.LocalIPv4s, netip.AddrFrom4([4]byte{10, byte(i), 0, byte(10 + a)}))
		}
		for p := range 4 {
			e.IPv4Prefixes = append(e.IPv4Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, byte(64 + 16*p)}), 28))
		}
		inst.ENIs = append(inst.ENIs, e)
		links = append(links, core.Link{Name: fmt.Sprintf("ens%d", 5+i), Index: 2 + i, MAC: e.MAC, Driver: "ena"})
	}
	opts := core.DefaultPlanOptions()
	b.Run("plan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			core.NewPlan(inst, links, opts)
		}
	})
	b.Run("reuse", func(b *testing.B) {
		var c planCache
		c.get(inst, links, opts)
		b.ReportAllocs()
		for b.Loop() {
			c.get(inst, links, opts)
		}
	})
}
