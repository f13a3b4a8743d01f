package networkmanager

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v3"
	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

// baseProfile is the packaged profile as NM loads it: no interface name, no MAC, the base tag.
func baseProfile() Settings {
	return Settings{
		"connection": {"id": dbus.MakeVariant("ec2-net-utils-default"), "uuid": dbus.MakeVariant("bc0f863c-4ca4-4251-ac30-ba90643386e4"),
			"type": dbus.MakeVariant("802-3-ethernet"), "multi-connect": dbus.MakeVariant(int32(3))},
		"ipv4": {"method": dbus.MakeVariant("auto"), "route-metric": dbus.MakeVariant(int64(1024))},
		"user": {"data": dbus.MakeVariant(map[string]string{TagBase: "yes"})},
	}
}

// userProfile is a profile of the user's (cloud-init's) for one interface, with a rule of its own.
func userProfile(iface string, data map[string]string) Settings {
	rule := map[string]dbus.Variant{"family": dbus.MakeVariant(afInet), "priority": dbus.MakeVariant(uint32(200)),
		"from": dbus.MakeVariant("192.0.2.10"), "from-len": dbus.MakeVariant(uint8(32)), "table": dbus.MakeVariant(uint32(200))}
	s := Settings{
		"connection": {"id": dbus.MakeVariant("cloud-init " + iface), "uuid": dbus.MakeVariant("1d0f4c55-7a7e-4c5e-9d2b-1b5c0e2f9a0" + iface[len(iface)-1:]),
			"type": dbus.MakeVariant("802-3-ethernet"), "interface-name": dbus.MakeVariant(iface)},
		"ipv4": {"method": dbus.MakeVariant("auto"), "routing-rules": dbus.MakeVariant([]map[string]dbus.Variant{rule})},
		"ipv6": {"method": dbus.MakeVariant("auto")},
	}
	if data != nil {
		s["user"] = map[string]dbus.Variant{"data": dbus.MakeVariant(data)}
	}
	return s
}

type fixture struct {
	nm     *fakeNM
	kernel *fakeKernel
	b      *Backend
	base   dbus.ObjectPath
}

// newFixture is NM right after boot: ens5 and ens6 present, both running the base profile.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{nm: newFakeNM(), kernel: newFakeKernel()}
	f.base = f.nm.addProfile(baseProfile(), false)
	for _, p := range []core.InterfacePlan{plantest.Primary(), plantest.IPv4Only()} {
		f.nm.addDevice(p.Name, p.MAC)
		f.nm.run(p.Name, f.base)
	}
	f.b = newBackend(f.nm, Options{Kernel: f.kernel, Logger: testLogger(t), DeviceWait: 50 * time.Millisecond})
	return f
}

func (f *fixture) apply(t *testing.T, plans ...core.InterfacePlan) core.Changes {
	t.Helper()
	return plantest.Apply(t, f.b, core.Plan{Interfaces: plans}, linksOf(plans)).Changes
}

// calls returns the calls recorded since the last one and forgets them.
func (f *fixture) calls() []string {
	c := f.nm.calls
	f.nm.calls = nil
	return c
}

func linksOf(plans []core.InterfacePlan) []core.Link {
	var links []core.Link
	for _, p := range plans {
		links = append(links, core.Link{Name: p.Name, Index: p.Index, MAC: p.MAC, Driver: "ena"})
	}
	return links
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls to NetworkManager (-want +got):\n%s", diff)
	}
}

// reappliable is a plan NM can take onto the base profile's activation: without an MTU of its own
// (NM 1.42 does not reapply 802-3-ethernet) and without IPv6.
func reappliable() core.InterfacePlan {
	p := plantest.IPv4Only()
	p.MTU = 0
	return p
}

func TestENIRunningTheBaseProfileGetsTheAgentsSettingsByOneReapply(t *testing.T) {
	f := newFixture(t)
	p := reappliable()
	ch := f.apply(t, plantest.Primary(), p)
	wantCalls(t, f.calls(),
		"reapply ec2-net-utils-default merged version=1 flags=1", "add ec2-net-utils-ens5 persist=false",
		"reapply ec2-net-utils-default merged version=1 flags=1", "add ec2-net-utils-ens6 persist=false")
	want := core.Changes{Written: []string{"applied:ens5", "ec2-net-utils-ens5", "applied:ens6", "ec2-net-utils-ens6"}, Reloads: 2}
	if !cmp.Equal(ch, want) {
		t.Errorf("changes = %+v, want %+v", ch, want)
	}
	d := f.nm.devices["ens6"]
	if d.active != f.base {
		t.Errorf("ens6 runs %s, want the base profile's activation kept", d.active)
	}
	if got := diff(ipSettings(Render(p)), d.applied); got != "" {
		t.Errorf("ens6's applied connection differs from the plan at %s", got)
	}
	ours := newNMState(must(f.nm.Profiles(context.Background()))).ours[p.MAC]
	if ours == nil || diff(Render(p), ours.Settings) != "" {
		t.Errorf("the agent's profile for ens6 is missing or differs from the plan: %+v", ours)
	}

	if ch := f.apply(t, plantest.Primary(), p); ch.Changed() {
		t.Errorf("second apply changed %+v", ch)
	}
	wantCalls(t, f.calls())
}

// NM takes a Reapply from the IP configuration stage on: a base activation still waiting for its
// DHCP lease gets the plan the same way.
func TestBaseWaitingForDHCPGetsTheAgentsSettingsByReapply(t *testing.T) {
	f := newFixture(t)
	f.nm.devices["ens6"].state = gonm.NmDeviceStateIpConfig
	p := reappliable()
	f.apply(t, p)
	wantCalls(t, f.calls(), "reapply ec2-net-utils-default merged version=1 flags=1", "add ec2-net-utils-ens6 persist=false")
	if got := diff(ipSettings(Render(p)), f.nm.devices["ens6"].applied); got != "" {
		t.Errorf("ens6's applied connection differs from the plan at %s", got)
	}
}

// NM restarted: it assumes the base profile again, with its own settings, until a pass reapplies
// the agent's; a later autoconnect picks the agent's profile, which needs nothing more.
func TestBaseAssumedAgainIsReappliedAndTheAgentsProfileNeedsNothing(t *testing.T) {
	f := newFixture(t)
	p := reappliable()
	f.apply(t, p)
	f.nm.run("ens6", f.base)
	f.calls()
	ch := f.apply(t, p)
	wantCalls(t, f.calls(), "reapply ec2-net-utils-default merged version=3 flags=1")
	if want := (core.Changes{Written: []string{"applied:ens6"}, Reloads: 1}); !cmp.Equal(ch, want) {
		t.Errorf("changes = %+v, want %+v", ch, want)
	}

	f.nm.run("ens6", newNMState(must(f.nm.Profiles(context.Background()))).ours[p.MAC].Path)
	if ch := f.apply(t, p); ch.Changed() {
		t.Errorf("apply with the agent's profile autoconnected changed %+v", ch)
	}
	wantCalls(t, f.calls())
}

// What NM cannot take onto the base's activation gets the agent's profile activated in its place.
func TestBaseIsReplacedWhenItsActivationCannotTakeThePlan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plan  core.InterfacePlan
		state gonm.NmDeviceState
	}{
		{"an MTU of its own", plantest.IPv4Only(), gonm.NmDeviceStateActivated},
		{"IPv6", plantest.IPv6Only(), gonm.NmDeviceStateActivated},
		{"the base's activation not in its IP configuration yet", reappliable(), gonm.NmDeviceStateConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.nm.devices["ens6"].state = tc.state
			ch := f.apply(t, tc.plan)
			wantCalls(t, f.calls(), "add-and-activate ec2-net-utils-ens6 persist=false")
			if ch.Reloads != 1 || !slices.Contains(ch.Written, "ec2-net-utils-ens6") {
				t.Errorf("changes = %+v, want the agent's profile added and activated", ch)
			}
		})
	}
}

// NM refusing the settings on the base's activation (a Reapply error, not a race) must not leave
// the ENI on the base's settings at every pass: the agent's profile is activated in its place.
func TestBaseRefusingTheReapplyIsReplacedByTheAgentsProfile(t *testing.T) {
	f := newFixture(t)
	f.nm.reapplyErr = errors.New("Reapply: Can't reapply any changes to 'ipv4' setting")
	ch := f.apply(t, reappliable())
	wantCalls(t, f.calls(), "add ec2-net-utils-ens6 persist=false", "activate ec2-net-utils-ens6")
	if want := (core.Changes{Written: []string{"ec2-net-utils-ens6"}, Reloads: 1}); !cmp.Equal(ch, want) {
		t.Errorf("changes = %+v, want %+v", ch, want)
	}
	if d := f.nm.devices["ens6"]; d.active == f.base {
		t.Errorf("ens6 still runs the base profile")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestChangeToAnUpProfileIsUpdatedAndReappliedWithTheVersionID(t *testing.T) {
	f := newFixture(t)
	p := plantest.IPv4Only()
	f.apply(t, p)
	f.calls()
	version := f.nm.devices["ens6"].version

	p.Addresses = append(p.Addresses, netip.MustParsePrefix("10.0.1.8/32"))
	p.Rules = append(p.Rules, core.Rule{Family: core.IPv4, From: netip.MustParsePrefix("10.0.1.8/32"), Table: 10001, Priority: 10001})
	ch := f.apply(t, p)
	wantCalls(t, f.calls(), "update ec2-net-utils-ens6 persist=false",
		"reapply ec2-net-utils-ens6 profile version="+strconv.FormatUint(version, 10)+" flags=1")
	if want := (core.Changes{Written: []string{"ec2-net-utils-ens6"}, Reloads: 1}); !cmp.Equal(ch, want) {
		t.Errorf("changes = %+v, want %+v", ch, want)
	}
	if d := diff(Render(p), f.nm.devices["ens6"].applied); d != "" {
		t.Errorf("applied connection differs from the plan at %s", d)
	}
}

func TestReapplyIsRetriedWhenTheAppliedConnectionChangedMeanwhile(t *testing.T) {
	f := newFixture(t)
	p := plantest.IPv4Only()
	f.apply(t, p)
	f.calls()
	p.MTU = 1500
	f.nm.mismatches = 2
	if ch := f.apply(t, p); ch.Reloads != 1 {
		t.Errorf("changes = %+v, want one Reapply", ch)
	}
	f.nm.mismatches = reapplyTries
	p.MTU = 9001
	if _, err := f.b.Apply(context.Background(), core.Plan{Interfaces: []core.InterfacePlan{p}}, linksOf([]core.InterfacePlan{p})); err == nil ||
		!strings.Contains(err.Error(), "changed 3 times") {
		t.Errorf("Apply with the applied connection always changing: %v", err)
	}
}

// TestAppliedConnectionChangedBehindOurBackIsRestored: someone reapplied other settings (or NM
// re-read the profile); the next pass reapplies the profile without rewriting it.
func TestAppliedConnectionChangedBehindOurBackIsRestored(t *testing.T) {
	f := newFixture(t)
	p := plantest.IPv4Only()
	f.apply(t, p)
	f.calls()
	f.nm.devices["ens6"].applied["ipv4"]["routing-rules"] = dbus.MakeVariant([]map[string]dbus.Variant{})
	ch := f.apply(t, p)
	if len(ch.Written) != 0 || ch.Reloads != 1 {
		t.Errorf("changes = %+v, want only a Reapply", ch)
	}
}

func TestActivatingDeviceGetsTheProfileButNoReapply(t *testing.T) {
	f := newFixture(t)
	p := plantest.IPv4Only()
	f.apply(t, p)
	f.nm.devices["ens6"].state = gonm.NmDeviceStateIpConfig
	f.calls()
	p.MTU = 1500
	ch := f.apply(t, p)
	wantCalls(t, f.calls(), "update ec2-net-utils-ens6 persist=false")
	if ch.Reloads != 0 {
		t.Errorf("reapplied on a device still activating: %+v", ch)
	}
}

func TestUserProfileGetsThePlanMergedIntoItsAppliedConnection(t *testing.T) {
	f := newFixture(t)
	user := f.nm.addProfile(userProfile("ens6", nil), false)
	f.nm.run("ens6", user)
	before := nmCopy(f.nm.profiles[user].settings)
	p := plantest.IPv4Only()

	ch := f.apply(t, p)
	wantCalls(t, f.calls(), "reapply cloud-init ens6 merged version=2 flags=1")
	if want := (core.Changes{Written: []string{AppliedName("ens6")}, Reloads: 1}); !cmp.Equal(ch, want) {
		t.Errorf("changes = %+v, want %+v", ch, want)
	}
	rules := listValue(f.nm.devices["ens6"].applied, "ipv4", "routing-rules")
	if len(rules) != 2 || canon(rules[0]["priority"]) != canon(dbus.MakeVariant(uint32(200))) {
		t.Errorf("applied rules = %v, want the user's rule and then ours", rules)
	}
	if d := diff(before, f.nm.profiles[user].settings); d != "" {
		t.Errorf("the user's profile changed at %s", d)
	}
	if ch := f.apply(t, p); ch.Changed() {
		t.Errorf("second apply changed %+v", ch)
	}

	// The user re-activates the profile: the applied connection is the profile again.
	f.nm.run("ens6", user)
	if ch := f.apply(t, p); ch.Reloads != 1 {
		t.Errorf("after re-activation: %+v, want the routing reapplied", ch)
	}
}

func TestProfileTaggedSkipIsLeftAlone(t *testing.T) {
	f := newFixture(t)
	f.nm.run("ens6", f.nm.addProfile(userProfile("ens6", map[string]string{TagSkip: "yes"}), false))
	if ch := f.apply(t, plantest.IPv4Only()); ch.Changed() {
		t.Errorf("changes = %+v, want none", ch)
	}
	wantCalls(t, f.calls())
}

// TestOwnProfileGoesWhenAUserProfileTakesTheENI: ours would compete with the user's at the next
// activation.
func TestOwnProfileGoesWhenAUserProfileTakesTheENI(t *testing.T) {
	f := newFixture(t)
	p := plantest.IPv4Only()
	f.apply(t, p)
	f.nm.run("ens6", f.nm.addProfile(userProfile("ens6", nil), false))
	f.calls()
	ch := f.apply(t, p)
	wantCalls(t, f.calls(), "delete ec2-net-utils-ens6", "reapply cloud-init ens6 merged version=3 flags=1")
	if !slices.Equal(ch.Removed, []string{"ec2-net-utils-ens6"}) {
		t.Errorf("removed = %v", ch.Removed)
	}
}

// TestUserProfileWaitingForTheENIIsNotTakenOver: the base still runs, but a profile of the
// user's is available: route the base's lease, create nothing.
func TestUserProfileWaitingForTheENIIsNotTakenOver(t *testing.T) {
	f := newFixture(t)
	f.nm.addProfile(userProfile("ens6", nil), false)
	ch := f.apply(t, plantest.IPv4Only())
	wantCalls(t, f.calls(), "reapply ec2-net-utils-default merged version=1 flags=1")
	if !slices.Equal(ch.Written, []string{AppliedName("ens6")}) {
		t.Errorf("written = %v", ch.Written)
	}

	f.nm.devices["ens6"].active, f.nm.devices["ens6"].state = "", gonm.NmDeviceStateDisconnected
	if ch := f.apply(t, plantest.IPv4Only()); ch.Changed() {
		t.Errorf("disconnected ENI with a user's profile available: %+v, want nothing", ch)
	}
}

func TestIdleENIGetsAProfileActivatedUnlessAutoconnectIsOff(t *testing.T) {
	for _, autoconnect := range []bool{true, false} {
		f := newFixture(t)
		d := f.nm.devices["ens6"]
		d.active, d.state, d.autoconnect = "", gonm.NmDeviceStateDisconnected, autoconnect
		ch := f.apply(t, plantest.IPv4Only())
		want := "add ec2-net-utils-ens6 persist=false"
		if autoconnect {
			want = "add-and-activate ec2-net-utils-ens6 persist=false"
		}
		wantCalls(t, f.calls(), want)
		if (ch.Reloads == 1) != autoconnect {
			t.Errorf("autoconnect=%v: %+v", autoconnect, ch)
		}
		// Our profile exists and is down: NM's autoconnect decides (it may have been taken down).
		if ch := f.apply(t, plantest.IPv4Only()); ch.Changed() && !autoconnect {
			t.Errorf("autoconnect=%v: second apply %+v, want nothing", autoconnect, ch)
		}
	}
}

func TestExistingProfileReplacesTheBaseWithoutBeingAddedAgain(t *testing.T) {
	f := newFixture(t)
	p := plantest.IPv4Only()
	f.apply(t, p)
	f.nm.run("ens6", f.base) // e.g. the ENI came back and the base won a race
	f.calls()
	ch := f.apply(t, p)
	wantCalls(t, f.calls(), "activate ec2-net-utils-ens6")
	if ch.Reloads != 1 || len(ch.Written) != 0 {
		t.Errorf("changes = %+v", ch)
	}
}

func TestDetachDeletesOnlyTheAgentsProfilesOfENIsThatAreGone(t *testing.T) {
	f := newFixture(t)
	f.apply(t, plantest.Primary(), plantest.IPv4Only())
	f.nm.addProfile(Render(plantest.Card1()), true) // left by an ENI detached while the agent was down
	userOfGone := f.nm.addProfile(userProfile("ens9", nil), false)
	f.calls()

	// ens6 is detached; ens5 stays but is no longer planned (excluded, say): keep its profile.
	delete(f.nm.devices, "ens6")
	rep, err := f.b.Apply(context.Background(), core.Plan{}, linksOf([]core.InterfacePlan{plantest.Primary()}))
	ch := rep.Changes
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f.calls(), "delete ec2-net-utils-ens6", "delete ec2-net-utils-ens7")
	if ch.Reloads != 0 || !slices.Equal(ch.Removed, []string{"ec2-net-utils-ens6", "ec2-net-utils-ens7"}) {
		t.Errorf("changes = %+v", ch)
	}
	for _, p := range []dbus.ObjectPath{f.base, userOfGone} {
		if f.nm.profiles[p] == nil {
			t.Errorf("deleted %s, which is not the agent's", p)
		}
	}
}

func TestDryRunReportsTheSameAndChangesNothing(t *testing.T) {
	f := newFixture(t)
	dry := newBackend(f.nm, Options{DryRun: true, DeviceWait: time.Millisecond})
	rep, err := dry.Apply(context.Background(), core.Plan{Interfaces: []core.InterfacePlan{plantest.Primary(), plantest.IPv4Only()}},
		linksOf([]core.InterfacePlan{plantest.Primary(), plantest.IPv4Only()}))
	ch := rep.Changes
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f.calls())
	if real := f.apply(t, plantest.Primary(), plantest.IPv4Only()); !cmp.Equal(ch, real) {
		t.Errorf("dry run %+v, real %+v", ch, real)
	}
}

func TestPersistMovesTheProfile(t *testing.T) {
	f := newFixture(t)
	f.b.persist = true
	f.apply(t, plantest.IPv4Only())
	wantCalls(t, f.calls(), "add-and-activate ec2-net-utils-ens6 persist=true")
	f.b.persist = false
	ch := f.apply(t, plantest.IPv4Only())
	wantCalls(t, f.calls(), "update ec2-net-utils-ens6 persist=false")
	if ch.Reloads != 0 {
		t.Errorf("moving a profile to memory reconfigured the device: %+v", ch)
	}
}

func TestUnmanagedENIIsLeftAlone(t *testing.T) {
	f := newFixture(t)
	d := f.nm.devices["ens6"]
	d.active, d.state = "", gonm.NmDeviceStateUnmanaged
	if ch := f.apply(t, plantest.IPv4Only()); ch.Changed() {
		t.Errorf("changes = %+v on an unmanaged device", ch)
	}
	wantCalls(t, f.calls())
}

func TestHotAttachedLinkIsWaitedForAndAnUnknownOneReported(t *testing.T) {
	f := newFixture(t)
	f.nm.appearAfter["ens6"] = 2 // NM picks the link up after two polls
	if ch := f.apply(t, plantest.IPv4Only()); ch.Reloads != 1 {
		t.Errorf("changes = %+v, want the ENI taken over once NM knew it", ch)
	}
	delete(f.nm.devices, "ens6")
	_, err := f.b.Apply(context.Background(), core.Plan{Interfaces: []core.InterfacePlan{plantest.IPv4Only(), plantest.Primary()}},
		linksOf([]core.InterfacePlan{plantest.IPv4Only(), plantest.Primary()}))
	if err == nil || !strings.Contains(err.Error(), "ens6") {
		t.Errorf("Apply for a link NM never learns of: %v", err)
	}
	if diff(ipSettings(Render(plantest.Primary())), f.nm.devices["ens5"].applied) != "" {
		t.Errorf("an error on ens6 kept ens5 from being configured")
	}
}

func TestNetworkManagerBefore142ReappliesWithoutPreserveExternalIP(t *testing.T) {
	f := newFixture(t)
	f.nm.version = "1.40.16"
	p := plantest.IPv4Only()
	f.apply(t, p)
	p.MTU = 1500
	f.calls()
	f.apply(t, p)
	if calls := f.calls(); len(calls) != 2 || !strings.HasSuffix(calls[1], "flags=0") {
		t.Errorf("calls = %v, want a Reapply with flags 0", calls)
	}
}

// TestIPv6DefaultRouteFollowsTheRouterOnceKnown: the ENI table's IPv6 default route names the
// RA router, which NM reports only after an RA. The pass after that adds it with netlink; NM's
// connection is not touched (a Reapply that changes ipv6.routes restarts DHCPv6, issue #12).
func TestIPv6DefaultRouteFollowsTheRouterOnceKnown(t *testing.T) {
	f := newFixture(t)
	p := plantest.SecondaryDualStack()
	f.nm.addDevice(p.Name, p.MAC)
	f.nm.run(p.Name, f.base)
	f.apply(t, p)
	f.calls()
	f.nm.devices[p.Name].gateway6 = raRouter
	ch := f.apply(t, p)
	wantCalls(t, f.calls())
	if ch.Reloads != 0 {
		t.Errorf("changes = %+v, want the route added without a Reapply", ch)
	}
	if want := (core.Route{Table: 10001, Destination: netip.MustParsePrefix("::/0"), Gateway: raRouter}); !slices.Contains(f.kernel.routes, want) {
		t.Errorf("table 10001 = %v, want %s", f.kernel.routes, want)
	}
}

// TestRouterComingAndGoingIsNeverAReapply is the Reapply loop of issue #12: NM's RA router comes
// and goes (each IPv6 restart loses it), and every change used to be an Update + Reapply that
// restarted IPv6 again. Only the plan decides NM's connection; a router NM no longer reports
// keeps the route in place, and a new router replaces it with netlink.
func TestRouterComingAndGoingIsNeverAReapply(t *testing.T) {
	f := newFixture(t)
	p := plantest.SecondaryDualStack()
	f.nm.addDevice(p.Name, p.MAC)
	f.nm.run(p.Name, f.base)
	dev := f.nm.devices[p.Name]
	dev.gateway6 = raRouter
	f.apply(t, p) // takes over the base
	f.apply(t, p) // the route, once the device runs the agent's profile
	f.calls()
	route := core.Route{Table: 10001, Destination: netip.MustParsePrefix("::/0"), Gateway: raRouter}
	if !slices.Contains(f.kernel.routes, route) {
		t.Fatalf("table 10001 = %v, want %s", f.kernel.routes, route)
	}
	f.kernel.calls = nil

	other := netip.MustParseAddr("fe80::2")
	for _, step := range []struct {
		name   string
		router netip.Addr
		want   core.Route
	}{
		{"router gone", netip.Addr{}, route},
		{"router back", raRouter, route},
		{"router gone again", netip.Addr{}, route},
		{"another router", other, core.Route{Table: 10001, Destination: route.Destination, Gateway: other}},
	} {
		dev.gateway6 = step.router
		rep := f.report(t, p)
		wantCalls(t, f.calls())
		if rep.Reloads != 0 {
			t.Errorf("%s: %d Reapply calls, want none", step.name, rep.Reloads)
		}
		if ir := outcomeOf(t, rep, p); ir.Outcome != core.Configured {
			t.Errorf("%s: %+v, want configured (the route is in place)", step.name, ir)
		}
		if got := f.kernel.routes; !slices.Contains(got, step.want) || len(got) != 1 {
			t.Errorf("%s: table 10001 = %v, want only %s", step.name, got, step.want)
		}
	}
	if want := []string{"route replace ::/0 via fe80::2 dev ens6 table 10001"}; !cmp.Equal(f.kernel.calls, want) {
		t.Errorf("netlink calls = %v, want only the new router's route", f.kernel.calls)
	}
}

// TestRouterFromTheKernelWhenNetworkManagerReportsNone: NM reports no router (it does not with
// never-default, and not while it restarts IPv6), but the kernel has NM's RA route in main.
func TestRouterFromTheKernelWhenNetworkManagerReportsNone(t *testing.T) {
	f := newFixture(t)
	p := plantest.SecondaryDualStack()
	f.nm.addDevice(p.Name, p.MAC)
	f.nm.run(p.Name, f.base)
	f.apply(t, p)
	f.kernel.ra[p.Name] = raRouter
	rep := f.report(t, p)
	if ir := outcomeOf(t, rep, p); ir.Outcome != core.Configured || rep.Reloads != 0 {
		t.Errorf("%+v, want configured without a Reapply", rep)
	}
	if want := (core.Route{Table: 10001, Destination: netip.MustParsePrefix("::/0"), Gateway: raRouter}); !slices.Contains(f.kernel.routes, want) {
		t.Errorf("table 10001 = %v, want %s", f.kernel.routes, want)
	}
}

// TestRouteIsCheckedAgainAfterAReapply: NM 1.42 deletes the device's IPv6 addresses just after a
// Reapply (the link-local one too, and the kernel the ENI table's route through the link-local
// router with it), so the pass that reapplied does not call the ENI configured; the next pass
// puts the route back once the router is known again.
func TestRouteIsCheckedAgainAfterAReapply(t *testing.T) {
	f := newFixture(t)
	p := plantest.SecondaryDualStack()
	f.nm.addDevice(p.Name, p.MAC)
	f.nm.run(p.Name, f.base)
	f.nm.devices[p.Name].gateway6 = raRouter
	f.apply(t, p)
	f.apply(t, p)
	f.calls()

	p.MTU = 9001 // a change of the profile's stable part: addresses would not be reapplied (KernelCarried)
	rep := f.report(t, p)
	if ir := outcomeOf(t, rep, p); ir.Outcome != core.Deferred || ir.Reason != ReasonRA || rep.Reloads != 1 {
		t.Errorf("pass with a Reapply: %+v, want deferred for %q", rep, ReasonRA)
	}
	f.kernel.routes = nil // NM restarted IPv6
	rep = f.report(t, p)
	if ir := outcomeOf(t, rep, p); ir.Outcome != core.Configured || rep.Reloads != 0 {
		t.Errorf("next pass: %+v, want configured without a Reapply", rep)
	}
	if len(f.kernel.routes) != 1 {
		t.Errorf("table 10001 = %v, want the route back", f.kernel.routes)
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"1.42.4": true, "1.42.0": true, "1.43.2-dev": true, "2.0.0": true,
		"1.41.90": false, "1.20.0": false, "": false, "x.y": false} {
		if got := versionAtLeast(v, 1, 42); got != want {
			t.Errorf("versionAtLeast(%q, 1, 42) = %v", v, got)
		}
	}
}

// TestENIWithIPv6AddressChangesNeedNoReapply: NM 1.42 restarts IPv6 at every Reapply (issue #12),
// so an ENI with IPv6 keeps its source rules and secondary addresses out of its profile. An
// address that comes and goes in IMDS is added and removed with netlink, the profile's user data
// records it, and the device is never reapplied for it. An address the record does not list (the
// DHCPv6 one) is never removed.
func TestENIWithIPv6AddressChangesNeedNoReapply(t *testing.T) {
	f := newFixture(t)
	p := plantest.SecondaryDualStack()
	f.nm.addDevice(p.Name, p.MAC)
	f.nm.run(p.Name, f.base)
	f.nm.devices[p.Name].gateway6 = raRouter
	f.apply(t, p)
	if s := f.nm.devices[p.Name].applied; len(listValue(s, "ipv4", "routing-rules")) != 0 || len(listValue(s, "ipv4", "address-data")) != 0 ||
		userData(s)[TagKernel] != kernelCarries {
		t.Errorf("the profile carries rules or addresses, or no %s: %v", TagKernel, s)
	}
	if !slices.Equal(f.kernel.rules, p.Rules) {
		t.Errorf("rules in the kernel: %v, want %v", f.kernel.rules, p.Rules)
	}
	f.apply(t, p) // activated now: the addresses go in
	if !slices.Equal(f.kernel.addrs[p.Name], p.Addresses) {
		t.Errorf("addresses in the kernel: %v, want %v", f.kernel.addrs[p.Name], p.Addresses)
	}
	dhcp6 := netip.MustParsePrefix("2600:1f14:abc:de00::5/128")
	f.kernel.addrs[p.Name] = append(f.kernel.addrs[p.Name], dhcp6)
	f.calls()

	added := netip.MustParsePrefix("2600:1f14:abc:de00::9/128")
	next := p
	next.Addresses = []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32"), added}
	next.Rules = append(slices.Clone(p.Rules), core.Rule{Family: core.IPv6, From: added, Table: 10001, Priority: 10001})
	rep := plantest.Apply(t, f.b, core.Plan{Interfaces: []core.InterfacePlan{next}}, linksOf([]core.InterfacePlan{next}))
	if ir := outcomeOf(t, rep, next); ir.Outcome != core.Configured || rep.Reloads != 0 {
		t.Errorf("address change: %+v, want configured without a Reapply", rep)
	}
	for _, c := range f.calls() {
		if strings.HasPrefix(c, "reapply") || strings.HasPrefix(c, "activate") {
			t.Errorf("address change made NM %s", c)
		}
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32"), dhcp6, added}
	if !slices.Equal(f.kernel.addrs[p.Name], want) {
		t.Errorf("addresses in the kernel: %v, want %v", f.kernel.addrs[p.Name], want)
	}
	if !slices.ContainsFunc(f.kernel.rules, func(r core.Rule) bool { return r.From == added }) {
		t.Error("no rule for the added address")
	}
	st, err := f.nm.Profiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ours := newNMState(st).ours[p.MAC]
	if ours == nil || !slices.Equal(recordedAddresses(ours.Settings), next.Addresses) {
		t.Errorf("the profile records %v, want %v", recordedAddresses(ours.Settings), next.Addresses)
	}

	// The IPv6 addresses unassigned: the profile carries everything again (one Reapply), and the
	// IPv6 rules and address the agent added go; the DHCPv6 address stays.
	v4 := next
	v4.IPv6 = false
	v4.Addresses = []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32")}
	v4.Rules = slices.DeleteFunc(slices.Clone(next.Rules), func(r core.Rule) bool { return r.Family == core.IPv6 })
	v4.Routes = slices.DeleteFunc(slices.Clone(next.Routes), func(r core.Route) bool { return r.Destination.Addr().Is6() })
	plantest.Apply(t, f.b, core.Plan{Interfaces: []core.InterfacePlan{v4}}, linksOf([]core.InterfacePlan{v4}))
	if slices.ContainsFunc(f.kernel.rules, func(r core.Rule) bool { return r.Family == core.IPv6 }) {
		t.Errorf("IPv6 rules of ours left: %v", f.kernel.rules)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32"), dhcp6}; !slices.Equal(f.kernel.addrs[p.Name], want) {
		t.Errorf("addresses without IPv6: %v, want %v", f.kernel.addrs[p.Name], want)
	}
	if d := diff(Render(v4), f.nm.devices[p.Name].applied); d != "" {
		t.Errorf("ens6 does not run the IPv4 profile: differs at %s", d)
	}
}
