package ifcfg

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// status names an ENI's files: ifcfg-<iface>, which ifup reads, and the route, rule and dhclient
// files next to it; ours while they are as generated, the administrator's once edited.
func TestCarriersNameTheInterfaceFiles(t *testing.T) {
	f, plan, links := knobsSetup(t)
	carriers := func(p core.InterfacePlan) []core.Carrier {
		t.Helper()
		got, err := f.backend.Carriers(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			got[i].Name, _ = filepath.Rel(f.root, got[i].Name)
		}
		return got
	}
	eth0, eth1 := plan.Interfaces[0], plan.Interfaces[1]
	if got := carriers(eth1); len(got) != 0 {
		t.Errorf("before any apply: %+v, want nothing", got)
	}

	f.write(t, netScripts+"ifcfg-eth0", "DEVICE=eth0\nBOOTPROTO=dhcp\n") // the image's
	f.apply(t, plan, links)
	f.write(t, netScripts+"route-eth1", f.read(t, netScripts+"route-eth1")+"10.8.0.0/16 via 10.0.1.1 dev eth1 table 10001\n")
	if diff := cmp.Diff([]core.Carrier{
		{Name: netScripts + "ifcfg-eth1", InUse: true, Ours: true},
		{Name: netScripts + "route-eth1"},
		{Name: netScripts + "rule-eth1", Ours: true},
		{Name: "etc/dhcp/dhclient-eth1.conf", Ours: true},
	}, carriers(eth1)); diff != "" {
		t.Errorf("eth1, route-eth1 edited (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]core.Carrier{
		{Name: netScripts + "ifcfg-eth0", InUse: true},
		{Name: netScripts + "route-eth0", Ours: true},
	}, carriers(eth0)); diff != "" {
		t.Errorf("eth0, the image's ifcfg file (-want +got):\n%s", diff)
	}
}
