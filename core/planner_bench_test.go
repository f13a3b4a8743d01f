package core_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// BenchmarkPlan32ENIs plans the largest instance shape we know of: 32 ENIs with 50 addresses
// and 10 delegated prefixes each.
func BenchmarkPlan32ENIs(b *testing.B) {
	benchPlan(b, 32, 50, 10)
}

// BenchmarkPlanENIs shows how the planner grows with the number of ENIs (50 addresses and 4
// prefixes each, two network cards above 16): linearly, per ENI (issue #16).
func BenchmarkPlanENIs(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8, 16, 32} {
		b.Run(fmt.Sprintf("enis=%d", n), func(b *testing.B) { benchPlan(b, n, 50, 4) })
	}
}

// BenchmarkPlanIPs shows how the planner grows with the addresses per ENI (8 ENIs, 4 prefixes).
func BenchmarkPlanIPs(b *testing.B) {
	for _, n := range []int{1, 10, 25, 50, 100, 200} {
		b.Run(fmt.Sprintf("ips=%d", n), func(b *testing.B) { benchPlan(b, 8, n, 4) })
	}
}

func benchPlan(b *testing.B, enis, ips, prefixes int) {
	inst, links := scaleInstance(enis, ips, prefixes)
	opts := core.DefaultPlanOptions()
	b.ReportAllocs()
	for b.Loop() {
		p := core.NewPlan(inst, links, opts)
		if len(p.Interfaces) != enis {
			b.Fatalf("planned %d interfaces", len(p.Interfaces))
		}
	}
}

// scaleInstance is n ENIs with ips addresses and prefixes /28s each, on two cards above 16.
func scaleInstance(n, ips, prefixes int) (core.Instance, []core.Link) {
	inst := core.Instance{PrimaryMAC: mac(0)}
	var links []core.Link
	for i := range n {
		e := core.ENI{MAC: mac(i), InterfaceID: fmt.Sprintf("eni-%017x", i), DeviceNumber: i % 16, NetworkCard: i / 16,
			SubnetIPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)}
		for a := range ips {
			e.LocalIPv4s = append(e.LocalIPv4s, netip.AddrFrom4([4]byte{10, byte(i), byte(a / 250), byte(1 + a%250)}))
		}
		for p := range prefixes {
			e.IPv4Prefixes = append(e.IPv4Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 100, byte(16 * p)}), 28))
		}
		inst.ENIs = append(inst.ENIs, e)
		links = append(links, core.Link{Name: fmt.Sprintf("ens%d", 5+i), Index: 2 + i, MAC: mac(i), Driver: "ena"})
	}
	return inst, links
}

func mac(i int) string { return fmt.Sprintf("02:00:00:00:%02x:%02x", i/256, i%256) }
