package networkd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func TestScratchLab(t *testing.T) {
	step := os.Getenv("LAB_STEP")
	if step == "" {
		t.Skip()
	}
	conn, err := dbus.Connect("unix:path=" + os.Getenv("LAB_BUS"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := New(Options{Dir: os.Getenv("LAB_DIR"), StateDir: os.Getenv("LAB_STATE"), Reloader: NewDBusReloader(conn),
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug})})
	p5 := core.InterfacePlan{Name: "ens5", Index: idx("IDX5"), MAC: "02:00:00:00:05:05", InterfaceID: "eni-5", Primary: true,
		Table: 10000, Priority: 10000, Metric: 512, MainDefaultRoute: true, IPv4: true,
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.0.200/32")},
		Routes: []core.Route{{Table: 10000, Destination: v4Default, Gateway: netip.MustParseAddr("10.99.0.1")},
			{Table: 10000, Destination: netip.MustParsePrefix("10.99.0.0/24")}}}
	name6 := "ens6"
	if step == "reattach" {
		name6 = "ens7"
	}
	p6 := core.InterfacePlan{Name: name6, Index: idx("IDX6"), MAC: "02:00:00:00:06:06", InterfaceID: "eni-6", DeviceNumber: 1,
		Table: 10001, Priority: 10001, Metric: 513, MainDefaultRoute: true, IPv4: true, PrimaryIPv4: netip.MustParseAddr("10.99.1.50"),
		Rules: []core.Rule{{Family: core.IPv4, From: netip.MustParsePrefix("10.99.1.50/32"), Table: 10001, Priority: 10001},
			{Family: core.IPv4, From: netip.MustParsePrefix("10.99.1.201/32"), Table: 10001, Priority: 10001},
			{Family: core.IPv4, From: netip.MustParsePrefix("10.99.1.64/28"), Table: 10001, Priority: 10001}},
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.1.201/32")},
		Routes: []core.Route{{Table: 10001, Destination: v4Default, Gateway: netip.MustParseAddr("10.99.1.1")},
			{Table: 10001, Destination: netip.MustParsePrefix("10.99.1.0/24")},
			{Table: 10001, Destination: v6Default, GatewayFromRA: true}}}
	p6.MainDefaultRoute = os.Getenv("MAINDEF") != "0"
	links := []core.Link{{Name: "ens5", Index: p5.Index}, {Name: name6, Index: p6.Index}}
	plan := core.Plan{Interfaces: []core.InterfacePlan{p5, p6}}
	switch step {
	case "drop-secondary":
		plan.Interfaces[1].Addresses = nil
		plan.Interfaces[1].Rules = plan.Interfaces[1].Rules[:1]
	case "drop-rule":
		plan.Interfaces[1].Rules = plan.Interfaces[1].Rules[:2]
	case "drop-alias":
		plan.Interfaces[1].Rules = plan.Interfaces[1].Rules[:2]
		plan.Interfaces[1].Addresses = nil
	case "add-alias":
		plan.Interfaces[1].Rules = plan.Interfaces[1].Rules[:2]
		plan.Interfaces[1].Addresses = []netip.Prefix{netip.MustParsePrefix("10.99.1.202/32")}
	case "detach":
		plan.Interfaces = plan.Interfaces[:1]
		links = links[:1]
	}
	ch, err := b.Apply(context.Background(), plan, links)
	out, _ := json.Marshal(ch)
	fmt.Printf("CHANGES %s ERR %v\n", out, err)
}

func idx(k string) int { var i int; fmt.Sscan(os.Getenv(k), &i); return i }
