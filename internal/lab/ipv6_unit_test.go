package lab

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ec2-net-utils/ec2-net-utils/internal/golden"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

func TestSourceCheckRuleset6(t *testing.T) {
	got := renderSrcCheck6([]srcCheckIface{
		{Name: "vpc0", Sources6: []string{"fd00:99::10"}},
		{Name: "vpc1", Sources6: []string{"fd00:99:0:1::10", "fd00:99:0:1::20", "fd00:99:0:1:1::/80"}},
		{Name: "vpc2"}, // IPv4 only or detached: only link-local and DAD pass
	})
	golden.Check(t, filepath.Join("testdata", "srccheck6.nft"), []byte(got), *update)
}

func TestAllowedSources6ComeFromIPv6sAndPrefixes(t *testing.T) {
	keys := map[string]scenario.Value{
		"local-ipv4s": {"10.99.1.10"},
		"ipv6s":       {"fd00:99:0:1::10", "FD00:99:0:1:0::20", "fd00:99:0:1::10", "bogus", "10.99.1.11"},
		"ipv6-prefix": {"fd00:99:0:1:1::5/80", "fd00::/x"},
	}
	want := []string{"fd00:99:0:1::10", "fd00:99:0:1::20", "fd00:99:0:1:1::/80"}
	if diff := cmp.Diff(want, allowedSources6(keys)); diff != "" {
		t.Errorf("allowedSources6 (-want +got):\n%s", diff)
	}
}

func TestIPv6SpecPublishesSubnetKeysAndHostEntry(t *testing.T) {
	tests := []struct {
		name     string
		spec     ENISpec
		wantKeys []string
		wantHost string
	}{
		{"IPv4 only", ENISpec{Slot: 1, Name: "ens6"},
			[]string{"device-number", "interface-id", "local-ipv4s", "network-card", "subnet-ipv4-cidr-block", "vpc-ipv4-cidr-blocks"},
			"02:00:00:99:01:01,10.99.1.10"},
		{"dual stack", ENISpec{Slot: 1, Name: "ens6", IPv6s: []string{"fd00:99:0:1::10", "fd00:99:0:1::20"}, IPv6Prefixes: []string{"fd00:99:0:1:1::/80"}},
			[]string{"device-number", "interface-id", "ipv6-prefix", "ipv6s", "local-ipv4s", "network-card", "subnet-ipv4-cidr-block",
				"subnet-ipv6-cidr-blocks", "vpc-ipv4-cidr-blocks", "vpc-ipv6-cidr-blocks"},
			"02:00:00:99:01:01,10.99.1.10,[fd00:99:0:1::10]"},
		{"IPv6 only", ENISpec{Slot: 2, Name: "ens7", IPv6Only: true, IPv6s: []string{"fd00:99:0:2::10"}},
			[]string{"device-number", "interface-id", "ipv6s", "network-card", "subnet-ipv6-cidr-blocks", "vpc-ipv4-cidr-blocks", "vpc-ipv6-cidr-blocks"},
			"02:00:00:99:02:01,[fd00:99:0:2::10]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.normalize(); err != nil {
				t.Fatal(err)
			}
			keys := eniKeys(tt.spec)
			var names []string
			for k := range keys {
				names = append(names, k)
			}
			if diff := cmp.Diff(tt.wantKeys, names, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if got := hostLine(tt.spec.MAC, keys); got != tt.wantHost {
				t.Errorf("host line = %q, want %q", got, tt.wantHost)
			}
		})
	}
}

func TestIPv6SpecRejectsAddressesOutsideTheSubnet(t *testing.T) {
	for _, spec := range []ENISpec{
		{Slot: 1, Name: "ens6", IPv6s: []string{"fd00:99:0:2::10"}},
		{Slot: 1, Name: "ens6", IPv6s: []string{"fd00:99:0:1::1"}}, // the router's
		{Slot: 1, Name: "ens6", IPv6Prefixes: []string{"fd00:99:0:1::/56"}},
		{Slot: 1, Name: "ens6", IPv6Only: true},
		{Slot: 1, Name: "ens6", IPv6Only: true, IPv6s: []string{"fd00:99:0:1::10"}, PrivateIPs: []string{"10.99.1.10"}},
	} {
		if err := spec.normalize(); err == nil {
			t.Errorf("normalize(%+v) accepted it", spec)
		}
	}
}
