package networkmanager

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

// status names the profile an ENI's device runs and the agent's profile for it, whoever's it is.
func TestCarriersNameTheProfileTheDeviceRuns(t *testing.T) {
	f := newFixture(t)
	p := plantest.IPv4Only()
	carriers := func() []core.Carrier {
		t.Helper()
		got, err := f.b.Carriers(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	ours := `profile "ec2-net-utils-ens6" uuid ` + ProfileUUID(p.MAC)

	if diff := cmp.Diff([]core.Carrier{{Name: `profile "ec2-net-utils-default" uuid bc0f863c-4ca4-4251-ac30-ba90643386e4`, InUse: true}},
		carriers()); diff != "" {
		t.Errorf("on the packaged base (-want +got):\n%s", diff)
	}

	f.apply(t, p)
	if diff := cmp.Diff([]core.Carrier{{Name: ours, InUse: true, Ours: true}}, carriers()); diff != "" {
		t.Errorf("on the agent's profile (-want +got):\n%s", diff)
	}

	// Reapplied onto the base's activation: the agent's profile is what the device applies.
	f.nm.run("ens6", f.base)
	q := reappliable()
	q.MAC = p.MAC
	f.apply(t, q)
	ours = `profile "ec2-net-utils-ens6" uuid ` + ProfileUUID(q.MAC)
	base := `profile "ec2-net-utils-default" uuid bc0f863c-4ca4-4251-ac30-ba90643386e4`
	if diff := cmp.Diff([]core.Carrier{{Name: ours, InUse: true, Ours: true}, {Name: base, InUse: true}}, carriers()); diff != "" {
		t.Errorf("on the base's activation with the agent's settings (-want +got):\n%s", diff)
	}
	// NM restarted and assumed the base with its own settings: the base alone is in use.
	f.nm.run("ens6", f.base)
	if diff := cmp.Diff([]core.Carrier{{Name: base, InUse: true}, {Name: ours, Ours: true}}, carriers()); diff != "" {
		t.Errorf("on the base's activation with its own settings (-want +got):\n%s", diff)
	}

	// A user's profile waiting for the ENI while ours is down: ours is still the agent's.
	f.nm.devices["ens6"].active = ""
	if diff := cmp.Diff([]core.Carrier{{Name: ours, Ours: true}}, carriers()); diff != "" {
		t.Errorf("nothing running (-want +got):\n%s", diff)
	}

	f.nm.run("ens6", f.nm.addProfile(userProfile("ens6", nil), false))
	f.apply(t, p) // ours goes
	if diff := cmp.Diff([]core.Carrier{{Name: `profile "cloud-init ens6" uuid 1d0f4c55-7a7e-4c5e-9d2b-1b5c0e2f9a06`, InUse: true}},
		carriers()); diff != "" {
		t.Errorf("on a user's profile (-want +got):\n%s", diff)
	}

	delete(f.nm.devices, "ens6")
	if got := carriers(); len(got) != 0 {
		t.Errorf("no device: %+v, want nothing", got)
	}
}

// An ENI with IPv6 keeps its rules and secondary addresses in the kernel: status says so, next to
// the profile.
func TestCarriersNameTheKernelForAnENIWithIPv6(t *testing.T) {
	f := newFixture(t)
	p := plantest.SecondaryDualStack()
	f.nm.addDevice(p.Name, p.MAC)
	f.nm.run(p.Name, f.base)
	f.apply(t, p)
	got, err := f.b.Carriers(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	want := []core.Carrier{
		{Name: `profile "ec2-net-utils-ens6" uuid ` + ProfileUUID(p.MAC), InUse: true, Ours: true},
		{Name: KernelCarrier("ec2-net-utils-ens6"), InUse: true, Ours: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("carriers (-want +got):\n%s", diff)
	}
}
