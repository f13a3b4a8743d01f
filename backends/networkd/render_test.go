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
	"github.com/ec2-net-utils/ec2-net-utils/internal/golden"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var v4Default = netip.MustParsePrefix("0.0.0.0/0")

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name   string
		plan   core.InterfacePlan
		active ActiveFile
		// paths Render must produce, in order: empty files are left out.
		paths []string
	}{
		{"primary-with-secondaries", plantest.Primary(), ActiveFile{},
			[]string{"70-ens5.network", "70-ens5.network.d/eni.conf", "70-ens5.network.d/ec2net_alias.conf"}},
		{"secondary-dual-stack-prefixes", plantest.SecondaryDualStack(), ActiveFile{},
			[]string{"70-ens6.network", "70-ens6.network.d/eni.conf"}}, // rules and addresses: in the kernel
		{"ipv4-only-mtu", plantest.IPv4Only(), ActiveFile{},
			[]string{"70-ens6.network", "70-ens6.network.d/eni.conf", "70-ens6.network.d/ec2net_policy_4.conf"}},
		{"ipv6-only", plantest.IPv6Only(), ActiveFile{},
			[]string{"70-ens6.network", "70-ens6.network.d/eni.conf"}},
		{"card1", plantest.Card1(), ActiveFile{},
			[]string{"70-ens7.network", "70-ens7.network.d/eni.conf", "70-ens7.network.d/ec2net_policy_4.conf"}},
		{"active-netplan", plantest.Primary(), ActiveFile{Path: "/run/systemd/network/10-netplan-ens5.network"},
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
			golden.Check(t, filepath.Join("testdata", tt.name+".golden"), dump(files), *update)
		})
	}
}

// TestRenderRuleFromMatchesReference pins the From= spelling 2.x writes (§2.3): a host prefix is a
// bare address, any other prefix keeps its length.
func TestRenderRuleFromMatchesReference(t *testing.T) {
	p := plantest.SecondaryDualStack()
	p.IPv6 = false // with IPv6 the rules are in the kernel, not in drop-ins (KernelCarried)
	files := Render(p, ActiveFile{})
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
	own := Render(plantest.Primary(), ActiveFile{})[0]
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
