package ifcfg

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

// Defect 3 of issue #10: with one route waiting for a router advertisement and another really
// refused, the refusal used to be swallowed with the wait (errors.Is on the joined error) and
// Apply reported success.
func TestRealRouteErrorIsNotSwallowedByARouterAdvertisementWait(t *testing.T) {
	plan, links := planFor(t, "secondary-basic", nil)
	f := newFixture(t, links)
	refused := errors.New("RTNETLINK answers: Network is unreachable")
	f.kernel.failRoute(3, "0.0.0.0/0", refused) // eth1's IPv4 default route; no RA seen on eth1 either
	_, err := f.backend.Apply(context.Background(), plan, links)
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "eth1") {
		t.Fatalf("Apply error = %v, want the refused route of eth1", err)
	}
}

// Defect 2 of issue #10, ifcfg side: EnsureRoutes' ErrNoRARouter is a "not yet". The interface
// is configured as far as it can be and reported Deferred, so the reconciler does not cache the
// pass as applied; once the RA has come, the next pass completes it.
func TestRouterAdvertisementWaitAloneDefersTheInterface(t *testing.T) {
	plan, links := planFor(t, "secondary-basic", nil)
	f := newFixture(t, links)
	rep, err := f.backend.Apply(context.Background(), plan, links)
	if err != nil {
		t.Fatal(err)
	}
	if ir := plantest.OutcomeOf(t, rep, "eth1"); ir.Outcome != core.Deferred || ir.Reason != ReasonRA {
		t.Errorf("eth1 before any RA: %+v, want deferred for %q", ir, ReasonRA)
	}
	if ir := plantest.OutcomeOf(t, rep, "eth0"); ir.Outcome != core.Configured {
		t.Errorf("eth0: %+v, want configured", ir)
	}
	if rep.Settled(plan) {
		t.Error("a pass waiting for an RA is settled")
	}
	if len(f.dhcp.procs) != 2 {
		t.Errorf("the wait kept eth1's dhclients from starting: %v", f.dhcp.procs)
	}

	f.kernel.ra[3] = mustAddr("fe80::1")
	rep, err = f.backend.Apply(context.Background(), plan, links)
	if err != nil || plantest.OutcomeOf(t, rep, "eth1").Outcome != core.Configured || !rep.Settled(plan) {
		t.Errorf("after the RA: %+v, err %v; want eth1 configured", rep.Interfaces, err)
	}
}

// With a real route error next to the wait, the interface fails (and the error says which route).
func TestRealRouteErrorFailsTheInterfaceThatAlsoWaits(t *testing.T) {
	plan, links := planFor(t, "secondary-basic", nil)
	f := newFixture(t, links)
	refused := errors.New("RTNETLINK answers: Network is unreachable")
	f.kernel.failRoute(3, "0.0.0.0/0", refused)
	rep, _ := f.backend.Apply(context.Background(), plan, links)
	ir := plantest.OutcomeOf(t, rep, "eth1")
	if ir.Outcome != core.Failed || !errors.Is(ir.Err, refused) || errors.Is(ir.Err, netlinkx.ErrNoRARouter) {
		t.Errorf("eth1: %+v, want failed with the refused route only", ir)
	}
}

// The actions a plan and the host's state lead to, the same in a dry run as in a real one.
func TestActionsForAPlanAndTheHostsState(t *testing.T) {
	plan, links := planFor(t, "secondary-basic", nil)
	for _, tc := range []struct {
		name    string
		setup   func(f *fixture)
		plan    core.Plan
		links   []core.Link
		actions []string
	}{
		{name: "nothing changed", setup: func(f *fixture) { f.apply(t, plan, links) }, plan: plan, links: links,
			actions: []string{"sync-kernel eth0", "sync-kernel eth1"}},
		{name: "EC2SYNC=no", plan: plan, links: links,
			setup: func(f *fixture) {
				f.apply(t, plan, links)
				f.write(t, netScripts+"ifcfg-eth1", onePointX("eth1", plan.Interfaces[1].MAC, "EC2SYNC=no"))
			},
			actions: []string{"sync-kernel eth0"}},
		{name: "eth1 detached", setup: func(f *fixture) { f.apply(t, plan, links); f.kernel.detach(3) },
			plan: core.Plan{Interfaces: plan.Interfaces[:1]}, links: links[:1],
			actions: []string{"sync-kernel eth0",
				"stop eth1: dhclient -4", "remove-dhclient-files eth1 -4", "stop eth1: dhclient -6", "remove-dhclient-files eth1 -6",
				"flush-table 10001",
				"remove %ROOT%/" + netScripts + "ifcfg-eth1", "remove %ROOT%/" + netScripts + "route-eth1",
				"remove %ROOT%/" + netScripts + "route6-eth1", "remove %ROOT%/" + netScripts + "rule-eth1",
				"remove %ROOT%/" + netScripts + "rule6-eth1", "remove %ROOT%/etc/dhcp/dhclient-eth1.conf",
				"remove %ROOT%/" + state + "eth1.json"}},
	} {
		for _, dry := range []bool{true, false} {
			f := newFixture(t, links)
			tc.setup(f)
			b, err := New(Options{Dir: f.path(netScripts), DHClientConfDir: f.path("etc/dhcp"), StateDir: f.path(state),
				BroadcastRenewals: true, Kernel: f.kernel, DHCP: f.dhcp, DryRun: dry})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Apply(context.Background(), tc.plan, tc.links); err != nil {
				t.Fatalf("%s (dry run %v): %v", tc.name, dry, err)
			}
			var got []string
			for _, a := range b.Actions() {
				got = append(got, strings.Replace(a, f.root, "%ROOT%", 1))
			}
			if diff := cmp.Diff(tc.actions, got); diff != "" {
				t.Errorf("%s (dry run %v): actions (-want +got):\n%s", tc.name, dry, diff)
			}
		}
	}
}

// Issue #14: a write killed midway leaves a temporary file; the first Apply removes ours.
func TestTemporaryFilesOfAKilledWriteAreRemovedAtStart(t *testing.T) {
	plan, links := planFor(t, "secondary-basic", nil)
	f := newFixture(t, links)
	stale := []string{netScripts + ".ifcfg-eth1.123.tmp", "etc/dhcp/.dhclient-eth1.conf.9.tmp", state + ".eth1.json.44.tmp"}
	for _, rel := range stale {
		f.write(t, rel, "half")
	}
	f.write(t, netScripts+".ifcfg-eth1.swp", "theirs")
	f.apply(t, plan, links)
	for _, rel := range stale {
		if f.exists(rel) {
			t.Errorf("%s is still there", rel)
		}
	}
	if !f.exists(netScripts + ".ifcfg-eth1.swp") {
		t.Error("a file not ours was removed")
	}
}
