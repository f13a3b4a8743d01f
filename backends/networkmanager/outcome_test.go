package networkmanager

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	gonm "github.com/Wifx/gonetworkmanager/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

// report applies plans and returns the outcome of each interface.
func (f *fixture) report(t *testing.T, plans ...core.InterfacePlan) core.Report {
	t.Helper()
	return plantest.Apply(t, f.b, core.Plan{Interfaces: plans}, linksOf(plans))
}

func outcomeOf(t *testing.T, rep core.Report, p core.InterfacePlan) core.InterfaceReport {
	t.Helper()
	ir, ok := rep.Outcome(p.MAC)
	if !ok {
		t.Fatalf("no outcome for %s in %+v", p.Name, rep.Interfaces)
	}
	return ir
}

// Defect 1 of issue #10, backend side: every way NetworkManager's backend leaves an ENI alone is
// reported, with why, so that the reconciler adds no rules or altnames for it either.
func TestENIsLeftAloneAreReportedWithTheReason(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(f *fixture)
		reason string
	}{
		{"unmanaged", func(f *fixture) {
			d := f.nm.devices["ens6"]
			d.active, d.state = "", gonm.NmDeviceStateUnmanaged
		}, "does not manage"},
		{"profile tagged skip", func(f *fixture) {
			f.nm.run("ens6", f.nm.addProfile(userProfile("ens6", map[string]string{TagSkip: "yes"}), false))
		}, TagSkip + "=yes"},
		{"user's profile waiting", func(f *fixture) {
			f.nm.addProfile(userProfile("ens6", nil), false)
			f.nm.devices["ens6"].active, f.nm.devices["ens6"].state = "", gonm.NmDeviceStateDisconnected
		}, "profile of the user's"},
	} {
		f := newFixture(t)
		tc.setup(f)
		p := plantest.IPv4Only()
		rep := f.report(t, plantest.Primary(), p)
		ir := outcomeOf(t, rep, p)
		if ir.Outcome != core.LeftAlone || !strings.Contains(ir.Reason, tc.reason) {
			t.Errorf("%s: ens6 %+v, want left alone because %q", tc.name, ir, tc.reason)
		}
		if got := outcomeOf(t, rep, plantest.Primary()).Outcome; got != core.Configured {
			t.Errorf("%s: ens5 %s, want configured", tc.name, got)
		}
		if !rep.Settled(core.Plan{Interfaces: []core.InterfacePlan{plantest.Primary(), p}}) {
			t.Errorf("%s: a pass with an ENI left alone is not settled", tc.name)
		}
	}
}

// Defect 2 of issue #10, backend side: the ENI table's IPv6 default route needs the router NM
// learns from an RA. Until NM knows it, the ENI is Deferred (the reconciler must try again, not
// cache the pass as applied); the pass after the RA adds the route (netlink) and reports it
// Configured.
func TestIPv6DefaultRouteWaitingForTheRouterIsDeferred(t *testing.T) {
	f := newFixture(t)
	p := plantest.SecondaryDualStack()
	f.nm.addDevice(p.Name, p.MAC)
	f.nm.run(p.Name, f.base)
	plan := core.Plan{Interfaces: []core.InterfacePlan{p}}

	rep := f.report(t, p)
	if ir := outcomeOf(t, rep, p); ir.Outcome != core.Deferred || ir.Reason != ReasonRA {
		t.Fatalf("before the RA: %+v, want deferred for %q", ir, ReasonRA)
	}
	if rep.Settled(plan) {
		t.Error("a pass waiting for the RA router is settled")
	}
	// Still no RA: still deferred; nothing for NM (the secondary addresses go into the kernel now
	// that the device is activated).
	if rep := f.report(t, p); outcomeOf(t, rep, p).Outcome != core.Deferred || rep.Reloads != 0 ||
		slices.Contains(rep.Written, ProfileID(p.Name)) {
		t.Errorf("second pass without an RA: %+v", rep)
	}

	f.nm.devices[p.Name].gateway6 = raRouter
	rep = f.report(t, p)
	if ir := outcomeOf(t, rep, p); ir.Outcome != core.Configured || rep.Reloads != 0 || !rep.Changed() {
		t.Errorf("after the RA: %+v, want configured with the route added and no Reapply", rep)
	}
	if !rep.Settled(plan) {
		t.Error("the pass after the RA is not settled")
	}
}

// A link NM still has no device for after DeviceWait fails rather than defers: NM not learning
// of an ENI in seconds is a NetworkManager that will not manage it (a udev rule, a plugin), which
// wants a human, and a failed interface is retried at the next pass all the same.
func TestLinkNetworkManagerNeverLearnsOfFails(t *testing.T) {
	f := newFixture(t)
	delete(f.nm.devices, "ens6")
	rep, err := f.b.Apply(context.Background(), core.Plan{Interfaces: []core.InterfacePlan{plantest.IPv4Only()}},
		linksOf([]core.InterfacePlan{plantest.IPv4Only()}))
	ir := outcomeOf(t, rep, plantest.IPv4Only())
	if ir.Outcome != core.Failed || !errors.Is(err, errUnknownDevice) || !errors.Is(ir.Err, errUnknownDevice) {
		t.Errorf("%+v, err %v; want failed with errUnknownDevice", ir, err)
	}
}

// When NM cannot even be asked (its profile list), every planned ENI fails.
func TestEveryENIFailsWhenNetworkManagerCannotBeRead(t *testing.T) {
	f := newFixture(t)
	f.nm.profilesErr = errors.New("bus gone")
	rep, err := f.b.Apply(context.Background(), core.Plan{Interfaces: []core.InterfacePlan{plantest.Primary(), plantest.IPv4Only()}},
		linksOf([]core.InterfacePlan{plantest.Primary(), plantest.IPv4Only()}))
	if err == nil || len(rep.Interfaces) != 2 || rep.Interfaces[0].Outcome != core.Failed || rep.Interfaces[1].Outcome != core.Failed {
		t.Errorf("report %+v, err %v; want both failed", rep.Interfaces, err)
	}
}

// The actions a plan and NM's state lead to, the same in a dry run as in a real one.
func TestActionsForAPlanAndNetworkManagersState(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(f *fixture)
		actions []string
	}{
		{"base profile running", nil, []string{"reapply ens5", "add-profile ec2-net-utils-ens5", "add-profile ec2-net-utils-ens6"}},
		{"ours running and up to date", func(f *fixture) {
			f.apply(t, plantest.Primary(), plantest.IPv4Only())
		}, nil},
		{"user's profile running", func(f *fixture) {
			f.nm.run("ens6", f.nm.addProfile(userProfile("ens6", nil), false))
		}, []string{"reapply ens5", "add-profile ec2-net-utils-ens5", "reapply ens6"}},
		{"ours left over after a user's profile took the ENI", func(f *fixture) {
			f.apply(t, plantest.Primary(), plantest.IPv4Only())
			f.nm.run("ens6", f.nm.addProfile(userProfile("ens6", nil), false))
		}, []string{"delete-profile ec2-net-utils-ens6", "reapply ens6"}},
	} {
		for _, dry := range []bool{true, false} {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			b := newBackend(f.nm, Options{DryRun: dry, DeviceWait: f.b.deviceWait})
			plans := []core.InterfacePlan{plantest.Primary(), plantest.IPv4Only()}
			if _, err := b.Apply(context.Background(), core.Plan{Interfaces: plans}, linksOf(plans)); err != nil {
				t.Fatalf("%s (dry run %v): %v", tc.name, dry, err)
			}
			if diff := cmp.Diff(tc.actions, b.Actions()); diff != "" {
				t.Errorf("%s (dry run %v): actions (-want +got):\n%s", tc.name, dry, diff)
			}
		}
	}
}
