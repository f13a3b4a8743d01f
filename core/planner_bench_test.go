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
	inst := core.Instance{PrimaryMAC: mac(0)}
	var links []core.Link
	for i := range 32 {
		e := core.ENI{MAC: mac(i), InterfaceID: fmt.Sprintf("eni-%017x", i), DeviceNumber: i % 16, NetworkCard: i / 16,
			SubnetIPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)}
		for a := range 50 {
			e.LocalIPv4s = append(e.LocalIPv4s, netip.AddrFrom4([4]byte{10, byte(i), 0, byte(10 + a)}))
		}
		for p := range 10 {
			e.IPv4Prefixes = append(e.IPv4Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 1, byte(16 * p)}), 28))
		}
		inst.ENIs = append(inst.ENIs, e)
		links = append(links, core.Link{Name: fmt.Sprintf("ens%d", 5+i), Index: 2 + i, MAC: mac(i), Driver: "ena"})
	}
	opts := core.DefaultPlanOptions()
	b.ReportAllocs()
	for b.Loop() {
		p := core.NewPlan(inst, links, opts)
		if len(p.Interfaces) != 32 {
			b.Fatalf("planned %d interfaces", len(p.Interfaces))
		}
	}
}

func mac(i int) string { return fmt.Sprintf("02:00:00:00:%02x:%02x", i/256, i%256) }
