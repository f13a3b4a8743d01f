// Package plantest holds hand-built interface plans, shaped as the planner builds them
// (numbering of amazon-ec2-net-utils 2.x), that every backend's golden tests render: the same ENIs
// through every backend, so their outputs can be compared.
package plantest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

var (
	v4Default = netip.MustParsePrefix("0.0.0.0/0")
	v6Default = netip.MustParsePrefix("::/0")
)

// Primary is the primary ENI with two secondary addresses: no source rules.
func Primary() core.InterfacePlan {
	return core.InterfacePlan{
		Name: "ens5", Index: 2, MAC: "02:00:00:00:05:05", InterfaceID: "eni-0a0a0a0a0a0a0a0a0",
		Primary: true, Table: 10000, Priority: 10000, Metric: 512, MainDefaultRoute: true, IPv4: true,
		PrimaryIPv4: netip.MustParseAddr("10.0.0.5"), SubnetIPv4: netip.MustParsePrefix("10.0.0.0/24"),
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/32"), netip.MustParsePrefix("10.0.0.12/32")},
		Routes: []core.Route{
			{Table: 10000, Destination: v4Default, Gateway: netip.MustParseAddr("10.0.0.1")},
			{Table: 10000, Destination: netip.MustParsePrefix("10.0.0.0/24")},
		},
	}
}

// SecondaryDualStack is a dual-stack secondary ENI with secondary addresses and delegated prefixes.
func SecondaryDualStack() core.InterfacePlan {
	rule := func(f core.Family, from string) core.Rule {
		return core.Rule{Family: f, From: netip.MustParsePrefix(from), Table: 10001, Priority: 10001}
	}
	return core.InterfacePlan{
		Name: "ens6", Index: 3, MAC: "02:aa:bb:cc:dd:ee", InterfaceID: "eni-0b0b0b0b0b0b0b0b0",
		DeviceNumber: 1, Table: 10001, Priority: 10001, Metric: 513, MainDefaultRoute: true, IPv4: true, IPv6: true,
		PrimaryIPv4: netip.MustParseAddr("10.0.1.50"), SubnetIPv4: netip.MustParsePrefix("10.0.1.0/24"),
		Rules: []core.Rule{
			// IMDS order, unsorted, as 2.x writes them.
			rule(core.IPv4, "10.0.1.50/32"), rule(core.IPv4, "10.0.1.52/32"), rule(core.IPv4, "10.0.1.51/32"),
			rule(core.IPv4, "10.0.1.64/28"),
			// IMDS served 2600:1f14:0abc:de00:0000:0000:0000:0005; the plan holds it canonical.
			rule(core.IPv6, "2600:1f14:abc:de00::5/128"), rule(core.IPv6, "2600:1f14:abc:de00:1234::/80"),
		},
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32"), netip.MustParsePrefix("10.0.1.52/32")},
		Routes: []core.Route{
			{Table: 10001, Destination: v4Default, Gateway: netip.MustParseAddr("10.0.1.1")},
			{Table: 10001, Destination: netip.MustParsePrefix("10.0.1.0/24")},
			{Table: 10001, Destination: v6Default, GatewayFromRA: true},
			{Table: 10001, Destination: netip.MustParsePrefix("2600:1f14:abc:de00::/64")},
		},
		Altnames: []string{"eni-0b0b0b0b0b0b0b0b0", "device-number-1.0"},
	}
}

// IPv4Only is a secondary ENI in an IPv4 subnet, with an MTU and no main-table default route.
func IPv4Only() core.InterfacePlan {
	return core.InterfacePlan{
		Name: "ens6", Index: 3, MAC: "02:00:00:00:06:06", InterfaceID: "eni-0c0c0c0c0c0c0c0c0",
		DeviceNumber: 1, Table: 10001, Priority: 10001, Metric: 513, MainDefaultRoute: false, IPv4: true,
		PrimaryIPv4: netip.MustParseAddr("10.0.1.7"), SubnetIPv4: netip.MustParsePrefix("10.0.1.0/24"),
		Rules: []core.Rule{{Family: core.IPv4, From: netip.MustParsePrefix("10.0.1.7/32"), Table: 10001, Priority: 10001}},
		Routes: []core.Route{
			{Table: 10001, Destination: v4Default, Gateway: netip.MustParseAddr("10.0.1.1")},
			{Table: 10001, Destination: netip.MustParsePrefix("10.0.1.0/24")},
		},
		MTU: 9001,
	}
}

// IPv6Only is a secondary ENI in an IPv6-only subnet.
func IPv6Only() core.InterfacePlan {
	return core.InterfacePlan{
		Name: "ens6", Index: 3, MAC: "02:00:00:00:06:07", InterfaceID: "eni-0d0d0d0d0d0d0d0d0",
		DeviceNumber: 1, Table: 10001, Priority: 10001, Metric: 513, MainDefaultRoute: true, IPv6: true,
		Rules: []core.Rule{
			{Family: core.IPv6, From: netip.MustParsePrefix("2600:1f14:abc:de00::7/128"), Table: 10001, Priority: 10001},
			{Family: core.IPv6, From: netip.MustParsePrefix("2600:1f14:abc:de00:4444::/80"), Table: 10001, Priority: 10001},
		},
		Routes: []core.Route{
			{Table: 10001, Destination: v6Default, GatewayFromRA: true},
			{Table: 10001, Destination: netip.MustParsePrefix("2600:1f14:abc:de00::/64")},
		},
	}
}

// Card1 is device 0 on network card 1: table 10100, metric 612.
func Card1() core.InterfacePlan {
	return core.InterfacePlan{
		Name: "ens7", Index: 4, MAC: "02:00:00:01:00:00", InterfaceID: "eni-0e0e0e0e0e0e0e0e0",
		DeviceNumber: 0, NetworkCard: 1, Table: 10100, Priority: 10100, Metric: 612, MainDefaultRoute: true, IPv4: true,
		PrimaryIPv4: netip.MustParseAddr("10.0.2.20"), SubnetIPv4: netip.MustParsePrefix("10.0.2.0/24"),
		Rules: []core.Rule{{Family: core.IPv4, From: netip.MustParsePrefix("10.0.2.20/32"), Table: 10100, Priority: 10100}},
		Routes: []core.Route{
			{Table: 10100, Destination: v4Default, Gateway: netip.MustParseAddr("10.0.2.1")},
			{Table: 10100, Destination: netip.MustParsePrefix("10.0.2.0/24")},
		},
	}
}

// Apply applies plan with b and fails the test on an error.
func Apply(t testing.TB, b core.Backend, plan core.Plan, links []core.Link) core.Report {
	t.Helper()
	rep, err := b.Apply(context.Background(), plan, links)
	if err != nil {
		t.Fatalf("%s Apply: %v", b.Name(), err)
	}
	return rep
}

// OutcomeOf is what rep says of the interface named name; the test fails if it says nothing.
func OutcomeOf(t testing.TB, rep core.Report, name string) core.InterfaceReport {
	t.Helper()
	for _, ir := range rep.Interfaces {
		if ir.Name == name {
			return ir
		}
	}
	t.Fatalf("no outcome for %s in %+v", name, rep.Interfaces)
	return core.InterfaceReport{}
}
