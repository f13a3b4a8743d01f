package networkd

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// status names the .network file networkd applies to an ENI and the agent's files for it: its
// own file, drop-ins next to a foreign file, and its own file listed after a user's /etc
// override that masks it.
func TestCarriersNameTheActiveFileAndOurs(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	ens5Plan, ens6Plan := plan.Interfaces[0], plan.Interfaces[1]
	carriers := func(p core.InterfacePlan) []core.Carrier {
		t.Helper()
		got, err := f.backend.Carriers(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if r, err := filepath.Rel(f.dir, got[i].Name); err == nil && filepath.IsLocal(r) {
				got[i].Name = r
			}
		}
		return got
	}

	if got := carriers(ens6Plan); len(got) != 0 {
		t.Errorf("before any apply: %+v, want nothing", got)
	}

	f.apply(t, plan, links)
	// Written, networkd has not picked it up yet: ours, not in use.
	if diff := cmp.Diff([]core.Carrier{
		{Name: "70-ens6.network", Ours: true},
		{Name: "70-ens6.network.d/eni.conf", Ours: true},
		{Name: "70-ens6.network.d/ec2net_policy_4.conf", Ours: true},
		{Name: "70-ens6.network.d/ec2net_alias.conf", Ours: true},
	}, carriers(ens6Plan)); diff != "" {
		t.Errorf("ens6 before networkd picks it up (-want +got):\n%s", diff)
	}

	netplan := filepath.Join(f.dir, "10-netplan-ens5.network")
	if err := os.WriteFile(netplan, []byte("[Match]\nName=ens5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.setNetworkFile(t, ens5.Index, netplan)
	f.setNetworkFile(t, ens6.Index, filepath.Join(f.dir, "70-ens6.network"))
	const override = "/etc/systemd/network/70-ens6.network"
	f.apply(t, plan, links)
	if diff := cmp.Diff([]core.Carrier{
		{Name: "10-netplan-ens5.network", InUse: true},
		{Name: "10-netplan-ens5.network.d/eni.conf", Ours: true},
		{Name: "10-netplan-ens5.network.d/ec2net_alias.conf", Ours: true},
	}, carriers(ens5Plan)); diff != "" {
		t.Errorf("ens5 on netplan's file (-want +got):\n%s", diff)
	}
	if got := carriers(ens6Plan); len(got) != 4 || got[0] != (core.Carrier{Name: "70-ens6.network", InUse: true, Ours: true}) {
		t.Errorf("ens6 on its own file: %+v", got)
	}

	f.setNetworkFile(t, ens6.Index, override)
	if got := carriers(ens6Plan); len(got) != 5 || got[0] != (core.Carrier{Name: override, InUse: true}) ||
		got[1] != (core.Carrier{Name: "70-ens6.network", Ours: true}) {
		t.Errorf("ens6 under a user's override: %+v", got)
	}
}
