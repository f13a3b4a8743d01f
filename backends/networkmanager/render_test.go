package networkmanager

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/golden"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

var raRouter = netip.MustParseAddr("fe80::1ff:fe23:4567:890a")

func withoutMainDefault(p core.InterfacePlan) core.InterfacePlan {
	p.MainDefaultRoute = false
	return p
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name string
		plan core.InterfacePlan
	}{
		{"primary-with-secondaries", plantest.Primary()},
		// The ENI table's IPv6 default route is not NM's: whether NM has seen an RA changes nothing.
		{"secondary-dual-stack-prefixes", plantest.SecondaryDualStack()},
		// Without the RA default route in main: never-default, and still no route-table.
		{"secondary-dual-stack-no-main-default", withoutMainDefault(plantest.SecondaryDualStack())},
		{"ipv4-only-mtu", plantest.IPv4Only()},
		{"ipv6-only", plantest.IPv6Only()},
		{"card1", plantest.Card1()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Render(tt.plan)
			if again := Render(tt.plan); diff(s, again) != "" || diff(again, s) != "" {
				t.Errorf("Render is not deterministic")
			}
			golden.Check(t, filepath.Join("testdata", tt.name+".golden.json"), settingsJSON(t, s), *update)
		})
	}
}

// TestRenderTypesAreWhatNetworkManagerTakes pins the D-Bus types NM insists on (lab README §4):
// a routing rule's table sent as int32 is rejected, and so is a route metric sent as uint32.
func TestRenderTypesAreWhatNetworkManagerTakes(t *testing.T) {
	s := Render(plantest.SecondaryDualStack())
	sig := func(v dbus.Variant) string { return v.Signature().String() }
	want := map[string]string{
		"802-3-ethernet.mac-address": "ay", "802-3-ethernet.mtu": "u",
		"ipv4.route-metric": "x", "ipv4.never-default": "b",
		"ipv4.address-data": "aa{sv}", "ipv4.route-data": "aa{sv}", "ipv4.routing-rules": "aa{sv}",
		"ipv6.addr-gen-mode": "i", "ipv6.route-table": "u", "user.data": "a{ss}",
	}
	for key, w := range want {
		setting, name, _ := strings.Cut(key, ".")
		if got := sig(s[setting][name]); got != w {
			t.Errorf("%s has type %s, want %s", key, got, w)
		}
	}
	v4 := plantest.SecondaryDualStack()
	v4.IPv6 = false // with IPv6 the rules are not in the profile (KernelCarried)
	rule := listValue(Render(v4), "ipv4", "routing-rules")[0]
	for key, w := range map[string]string{"family": "i", "priority": "u", "table": "u", "from-len": "y", "from": "s"} {
		if got := sig(rule[key]); got != w {
			t.Errorf("routing rule %s has type %s, want %s", key, got, w)
		}
	}
	route := listValue(s, "ipv4", "route-data")[0]
	for key, w := range map[string]string{"dest": "s", "prefix": "u", "next-hop": "s", "table": "u", "onlink": "b"} {
		if got := sig(route[key]); got != w {
			t.Errorf("route %s has type %s, want %s", key, got, w)
		}
	}
}

func TestProfileUUIDIsStablePerMACAndVersion5(t *testing.T) {
	a, b := ProfileUUID("02:00:00:00:06:06"), ProfileUUID("02:00:00:00:06:07")
	if a != ProfileUUID("02:00:00:00:06:06") || a == b {
		t.Fatalf("UUIDs %s, %s: want stable per MAC and different across MACs", a, b)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(a) {
		t.Errorf("%s is not an RFC 9562 version 5 UUID", a)
	}
	// Pinned: a different UUID for the same MAC after an upgrade would orphan every profile.
	if a != "3fc6ac69-b3fd-56eb-907e-8d2c92d7374c" {
		t.Errorf("ProfileUUID(02:00:00:00:06:06) = %s; it must never change", a)
	}
}

func TestOwnedNeedsTheTagAndTheUUIDOfItsOwnMAC(t *testing.T) {
	ours := Render(plantest.Primary())
	clone := Render(plantest.Primary())
	clone["connection"] = cloneSetting(clone["connection"])
	clone["connection"]["uuid"] = dbus.MakeVariant("0b6c5e1d-0000-4000-8000-000000000001") // nmcli connection clone
	untagged := Render(plantest.Primary())
	untagged["user"] = map[string]dbus.Variant{"data": dbus.MakeVariant(map[string]string{})}
	otherMAC := Render(plantest.Primary())
	otherMAC["802-3-ethernet"] = cloneSetting(otherMAC["802-3-ethernet"])
	otherMAC["802-3-ethernet"]["mac-address"] = dbus.MakeVariant([]byte{2, 0, 0, 0, 9, 9})
	for name, tt := range map[string]struct {
		s    Settings
		want bool
	}{"ours": {ours, true}, "clone": {clone, false}, "untagged": {untagged, false}, "other MAC": {otherMAC, false}} {
		if got := Owned(tt.s); got != tt.want {
			t.Errorf("%s: Owned = %v, want %v", name, got, tt.want)
		}
	}
}

// TestDiffReadsNetworkManagersCopy: NM leaves keys at their default out of GetSettings, so a
// profile NM returns must compare equal to the rendered one; a changed value or type must not.
func TestDiffReadsNetworkManagersCopy(t *testing.T) {
	want := Render(plantest.IPv4Only())
	if d := diff(want, nmCopy(want)); d != "" {
		t.Fatalf("NM's copy of an unchanged profile differs at %s", d)
	}
	changed := nmCopy(want)
	changed["ipv4"]["route-metric"] = dbus.MakeVariant(int64(100))
	if d := diff(want, changed); d != "ipv4.route-metric" {
		t.Errorf("changed metric: diff = %q", d)
	}
	retyped := nmCopy(want)
	rule := cloneList(listValue(retyped, "ipv4", "routing-rules"))
	rule[0]["table"] = dbus.MakeVariant(int32(10001))
	retyped["ipv4"]["routing-rules"] = dbus.MakeVariant(rule)
	if d := diff(want, retyped); d != "ipv4.routing-rules" {
		t.Errorf("table as int32: diff = %q", d)
	}
	extra := nmCopy(want)
	extra["ipv4"]["dns-search"] = dbus.MakeVariant([]string{"example.com"})
	if d := diff(want, extra); d != "" {
		t.Errorf("a key we do not manage made a difference: %s", d)
	}
}

func TestMergeAddsThePlanToTheUsersOwnRouting(t *testing.T) {
	p := plantest.SecondaryDualStack()
	userRule := map[string]dbus.Variant{"family": dbus.MakeVariant(afInet), "priority": dbus.MakeVariant(uint32(200)),
		"from": dbus.MakeVariant("192.0.2.10"), "from-len": dbus.MakeVariant(uint8(32)), "table": dbus.MakeVariant(uint32(200))}
	// The user's static address is also one of the plan's: it must not appear twice.
	userAddr := map[string]dbus.Variant{"address": dbus.MakeVariant("10.0.1.51"), "prefix": dbus.MakeVariant(uint32(32))}
	profileSettings := Settings{
		"connection": {"id": dbus.MakeVariant("cloud-init ens6"), "uuid": dbus.MakeVariant("1d0f4c55-7a7e-4c5e-9d2b-1b5c0e2f9a01"),
			"type": dbus.MakeVariant("802-3-ethernet"), "interface-name": dbus.MakeVariant("ens6")},
		"ipv4": {"method": dbus.MakeVariant("auto"), "routing-rules": dbus.MakeVariant([]map[string]dbus.Variant{userRule}),
			"address-data": dbus.MakeVariant([]map[string]dbus.Variant{userAddr}),
			"addresses":    dbus.MakeVariant([][]uint32{{0x3301000a, 32, 0}})},
		"ipv6": {"method": dbus.MakeVariant("auto")},
	}
	// Applied: what an earlier plan added (10.0.1.99 is no longer planned) on top of the profile.
	applied := nmCopy(profileSettings)
	stale := map[string]dbus.Variant{"address": dbus.MakeVariant("10.0.1.99"), "prefix": dbus.MakeVariant(uint32(32))}
	applied["ipv4"]["address-data"] = dbus.MakeVariant([]map[string]dbus.Variant{userAddr, stale})

	merged, skipped := Merge(applied, profileSettings, p)
	if len(skipped) != 0 {
		t.Errorf("skipped %v", skipped)
	}
	golden.Check(t, filepath.Join("testdata", "merge-user-profile.golden.json"), settingsJSON(t, merged), *update)
	if d := routingDiff(merged, applied); d != "ipv4.address-data" {
		t.Errorf("routingDiff(merged, applied) = %q, want the stale address found first", d)
	}
	again, _ := Merge(merged, profileSettings, p)
	if d := routingDiff(again, merged); d != "" {
		t.Errorf("merging twice changed %s", d)
	}
	if _, ok := applied["ipv4"]["addresses"]; !ok {
		t.Errorf("Merge modified the applied connection it was given")
	}
}

// TestMergeLeavesFamiliesWithoutAddressesAlone: a family whose method takes no addresses keeps
// its settings, less the deprecated arrays (which NM rejects after a godbus round trip: seen with
// a cloud-init profile with ipv6.method=ignore in the e2e lab).
func TestMergeLeavesFamiliesWithoutAddressesAlone(t *testing.T) {
	applied := Settings{
		"ipv4": {"method": dbus.MakeVariant("auto"), "addresses": dbus.MakeVariant([][]uint32{})},
		"ipv6": {"method": dbus.MakeVariant("ignore"), "addresses": dbus.MakeVariant([][]any{}), "routes": dbus.MakeVariant([][]any{})},
	}
	merged, skipped := Merge(applied, applied, plantest.SecondaryDualStack())
	if !slices.Equal(skipped, []string{"ipv6 (method ignore)"}) {
		t.Errorf("skipped = %v", skipped)
	}
	if want := []string{"method"}; !slices.Equal(sortedKeys(merged["ipv6"]), want) {
		t.Errorf("ipv6 keys = %v, want %v", sortedKeys(merged["ipv6"]), want)
	}
	if _, ok := merged["ipv4"]["addresses"]; ok {
		t.Errorf("ipv4.addresses kept")
	}
	if len(listValue(merged, "ipv4", "routing-rules")) != 4 {
		t.Errorf("ipv4 rules not merged: %v", merged["ipv4"])
	}
}

// TestPackagingMatchesTheCode keeps the packaged base profile and conf.d drop-in in step with the
// code: the base carries the tag the agent recognises, both name the default ENI drivers, and
// the base's metric stays above every metric the agent gives an ENI.
func TestPackagingMatchesTheCode(t *testing.T) {
	base := readPackaged(t, "system-connections/ec2-net-utils-default.nmconnection")
	dropIn := readPackaged(t, "conf.d/80-ec2-net-utils.conf")
	drivers := conf.Defaults().Interfaces.Drivers
	for _, want := range []string{
		TagBase + "=yes", "driver=" + strings.Join(drivers, ";") + ";", "multi-connect=3", "route-metric=1024",
	} {
		if !strings.Contains(base, "\n"+want+"\n") {
			t.Errorf("base profile lacks the line %q", want)
		}
	}
	if strings.Count(base, "route-metric=1024") != 2 {
		t.Errorf("base profile must give both families metric 1024")
	}
	var specs []string
	for _, d := range drivers {
		specs = append(specs, "driver:"+d)
	}
	if want := "no-auto-default+=" + strings.Join(specs, ","); !strings.Contains(dropIn, "\n"+want+"\n") {
		t.Errorf("drop-in lacks %q", want)
	}
}

func readPackaged(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "NetworkManager", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nmCopy returns settings as NM hands them back: keys at their default left out.
func nmCopy(s Settings) Settings {
	out := Settings{}
	for setting, keys := range s {
		out[setting] = map[string]dbus.Variant{}
		for k, v := range keys {
			if !isAbsent(setting+"."+k, v) {
				out[setting][k] = v
			}
		}
	}
	return out
}

func cloneSetting(m map[string]dbus.Variant) map[string]dbus.Variant {
	out := make(map[string]dbus.Variant, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneList(l []map[string]dbus.Variant) []map[string]dbus.Variant {
	out := make([]map[string]dbus.Variant, len(l))
	for i, m := range l {
		out[i] = cloneSetting(m)
	}
	return out
}

// settingsJSON writes settings as JSON with every value's D-Bus signature next to it, keys sorted.
func settingsJSON(t *testing.T, s Settings) []byte {
	t.Helper()
	out := map[string]map[string]any{}
	for setting, keys := range s {
		out[setting] = map[string]any{}
		for k, v := range keys {
			out[setting][k] = typed(v)
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// typed is {"signature": ..., "value": ...}; the members of aa{sv} entries are typed the same way.
func typed(v dbus.Variant) map[string]any {
	var value any = v.Value()
	switch x := v.Value().(type) {
	case []map[string]dbus.Variant:
		list := make([]map[string]any, len(x))
		for i, m := range x {
			list[i] = map[string]any{}
			for k, mv := range m {
				list[i][k] = typed(mv)
			}
		}
		value = list
	case []byte: // JSON would write base64; bytes read better as a MAC does
		parts := make([]string, len(x))
		for i, c := range x {
			parts[i] = fmt.Sprintf("%02x", c)
		}
		value = strings.Join(parts, ":")
	}
	return map[string]any{"signature": v.Signature().String(), "value": value}
}
