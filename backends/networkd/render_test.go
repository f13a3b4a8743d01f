package networkd

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var (
	v4Default = netip.MustParsePrefix("0.0.0.0/0")
	v6Default = netip.MustParsePrefix("::/0")
)

// Hand-built plans, shaped as the planner builds them (numbering per §2.1 of the reference).

func primaryPlan() core.InterfacePlan {
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

func secondaryDualStackPlan() core.InterfacePlan {
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

func ipv4OnlyPlan() core.InterfacePlan {
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

func ipv6OnlyPlan() core.InterfacePlan {
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

func card1Plan() core.InterfacePlan {
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

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name   string
		plan   core.InterfacePlan
		active ActiveFile
		// paths Render must produce, in order: empty files are left out.
		paths []string
	}{
		{"primary-with-secondaries", primaryPlan(), ActiveFile{},
			[]string{"70-ens5.network", "70-ens5.network.d/eni.conf", "70-ens5.network.d/ec2net_alias.conf"}},
		{"secondary-dual-stack-prefixes", secondaryDualStackPlan(), ActiveFile{},
			[]string{"70-ens6.network", "70-ens6.network.d/eni.conf", "70-ens6.network.d/ec2net_policy_4.conf",
				"70-ens6.network.d/ec2net_policy_6.conf", "70-ens6.network.d/ec2net_alias.conf"}},
		{"ipv4-only-mtu", ipv4OnlyPlan(), ActiveFile{},
			[]string{"70-ens6.network", "70-ens6.network.d/eni.conf", "70-ens6.network.d/ec2net_policy_4.conf"}},
		{"ipv6-only", ipv6OnlyPlan(), ActiveFile{},
			[]string{"70-ens6.network", "70-ens6.network.d/eni.conf", "70-ens6.network.d/ec2net_policy_6.conf"}},
		{"card1", card1Plan(), ActiveFile{},
			[]string{"70-ens7.network", "70-ens7.network.d/eni.conf", "70-ens7.network.d/ec2net_policy_4.conf"}},
		{"active-netplan", primaryPlan(), ActiveFile{Path: "/run/systemd/network/10-netplan-ens5.network"},
			[]string{"10-netplan-ens5.network.d/eni.conf", "10-netplan-ens5.network.d/ec2net_alias.conf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := Render(tt.plan, tt.active)
			var paths []string
			for _, f := range files {
				paths = append(paths, f.Path)
				if len(f.Content) == 0 {
					t.Errorf("%s is empty; empty files must be left out", f.Path)
				}
			}
			if diff := cmp.Diff(tt.paths, paths); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			if again := Render(tt.plan, tt.active); !cmp.Equal(files, again) {
				t.Errorf("Render is not deterministic")
			}
			checkGolden(t, filepath.Join("testdata", tt.name+".golden"), dump(files))
		})
	}
}

// TestRenderRuleFromMatchesReference pins the From= spelling 2.x writes (§2.3): a host prefix is a
// bare address, any other prefix keeps its length.
func TestRenderRuleFromMatchesReference(t *testing.T) {
	files := Render(secondaryDualStackPlan(), ActiveFile{})
	want := map[string][]string{
		"70-ens6.network.d/ec2net_policy_4.conf": {"From=10.0.1.50", "From=10.0.1.52", "From=10.0.1.51", "From=10.0.1.64/28"},
		"70-ens6.network.d/ec2net_policy_6.conf": {"From=2600:1f14:abc:de00::5", "From=2600:1f14:abc:de00:1234::/80"},
	}
	for _, f := range files {
		w, ok := want[f.Path]
		if !ok {
			continue
		}
		var got []string
		for _, line := range strings.Split(string(f.Content), "\n") {
			if strings.HasPrefix(line, "From=") {
				got = append(got, line)
			}
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s From= lines (-want +got):\n%s", f.Path, diff)
		}
	}
}

// TestOwnNetworkFileMatchesPackagedBase keeps the rendered 70- file and the packaged
// 80-ec2.network in step: writing the 70- file must change nothing but the [Match] and
// KeepConfiguration= for an ENI that the base configured until then, or the first apply would
// change its DHCP behaviour. The base must not keep DHCP configuration: its metric-1024 routes
// would outlive the switch to our file.
func TestOwnNetworkFileMatchesPackagedBase(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", "network", BaseNetworkFile))
	if err != nil {
		t.Fatal(err)
	}
	own := Render(primaryPlan(), ActiveFile{})[0]
	if own.Path != "70-ens5.network" {
		t.Fatalf("first file is %s, want the .network", own.Path)
	}
	strip := func(b []byte) map[string][]string {
		m := parseUnit(b)
		delete(m, "Match")
		m["Network"] = slices.DeleteFunc(m["Network"], func(l string) bool { return l == "KeepConfiguration=dhcp" })
		return m
	}
	if slices.ContainsFunc(parseUnit(base)["Network"], func(l string) bool { return strings.HasPrefix(l, "KeepConfiguration=") }) {
		t.Errorf("packaged %s sets KeepConfiguration=", BaseNetworkFile)
	}
	if !slices.Contains(parseUnit(own.Content)["Network"], "KeepConfiguration=dhcp") {
		t.Errorf("70-ens5.network lacks KeepConfiguration=dhcp")
	}
	if diff := cmp.Diff(strip(base), strip(own.Content)); diff != "" {
		t.Errorf("70-ens5.network differs from %s outside [Match] (-packaged +rendered):\n%s", BaseNetworkFile, diff)
	}
	if got := parseUnit(base)["Match"]; !cmp.Equal(got, []string{"Driver=ena ixgbevf vif"}) {
		t.Errorf("packaged [Match] = %q", got)
	}
}

// parseUnit returns each section's Key=Value lines, comments and blank lines dropped.
func parseUnit(b []byte) map[string][]string {
	m := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			cur = strings.Trim(line, "[]")
			if _, seen := m[cur]; !seen {
				m[cur] = nil // a section with no keys still exists
			}
		default:
			m[cur] = append(m[cur], line)
		}
	}
	return m
}

func dump(files Files) []byte {
	var b bytes.Buffer
	for i, f := range files {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "==> %s <==\n%s", f.Path, f.Content)
	}
	return b.Bytes()
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./backends/networkd -update)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}
