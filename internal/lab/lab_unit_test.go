package lab

import (
	"flag"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/internal/golden"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestSourceCheckRuleset(t *testing.T) {
	got := renderSrcCheck([]srcCheckIface{
		{Name: "vpc0", Sources: []string{"10.99.0.10", "10.99.0.20"}},
		{Name: "vpc1", Sources: []string{"10.99.1.10", "10.99.1.32/28"}},
		{Name: "vpc2"}, // detached: only DHCP passes
	})
	golden.Check(t, filepath.Join("testdata", "srccheck.nft"), []byte(got), *update)
}

func TestAllowedSourcesComeFromLocalIPv4sAndPrefixes(t *testing.T) {
	tests := []struct {
		name string
		keys map[string]scenario.Value
		want []string
	}{
		{"not published", nil, nil},
		{"primary only", map[string]scenario.Value{"local-ipv4s": {"10.99.1.10"}}, []string{"10.99.1.10"}},
		{
			"secondaries and prefixes, canonical and deduplicated",
			map[string]scenario.Value{
				"local-ipv4s": {"10.99.1.10", "10.99.1.20", "10.99.1.10"},
				"ipv4-prefix": {"10.99.1.33/28", "10.99.1.64/28"},
			},
			[]string{"10.99.1.10", "10.99.1.20", "10.99.1.32/28", "10.99.1.64/28"},
		},
		{
			"malformed and IPv6 values are skipped",
			map[string]scenario.Value{"local-ipv4s": {"10.99.1.10", "bogus", "fd00::1"}, "ipv4-prefix": {"10.99.1/28"}},
			[]string{"10.99.1.10"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, allowedSources(tt.keys)); diff != "" {
				t.Errorf("allowedSources (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDropCountersParsedPerInterface(t *testing.T) {
	out := `{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
 {"counter": {"family": "ip", "name": "srccheck_vpc0", "table": "ec2lab", "handle": 2, "packets": 3, "bytes": 252}},
 {"counter": {"family": "ip", "name": "srccheck_vpc12", "table": "ec2lab", "handle": 3, "packets": 0, "bytes": 0}}]}`
	got, err := parseCounters([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"vpc0": 3, "vpc12": 0}, got); diff != "" {
		t.Errorf("parseCounters (-want +got):\n%s", diff)
	}
	if _, err := parseCounters([]byte("Error: No such file")); err == nil {
		t.Error("parseCounters accepted non-JSON")
	}
}

func TestEchoRequestChecksum(t *testing.T) {
	// An echo request with id/seq 0 and no payload is 08 00 f7 ff 00 00 00 00.
	if got := echo(8, [4]byte{}, nil); string(got) != "\x08\x00\xf7\xff\x00\x00\x00\x00" {
		t.Errorf("echo = % x", got)
	}
	// A correct checksum makes the whole message sum to zero, odd lengths included.
	if c := checksum(echo(8, [4]byte{1, 2, 3, 4}, []byte("odd"))); c != 0 {
		t.Errorf("checksum over a checksummed message = %#x, want 0", c)
	}
}

func TestENISpecDefaultsAndValidation(t *testing.T) {
	s := ENISpec{Slot: 3, Name: "ens7", MAC: "02:00:00:00:07:0A"}
	if err := s.normalize(); err != nil {
		t.Fatal(err)
	}
	want := ENISpec{Slot: 3, Name: "ens7", MAC: "02:00:00:00:07:0a", InterfaceID: "eni-00000000000000003", PrivateIPs: []string{"10.99.3.10"}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("normalized spec (-want +got):\n%s", diff)
	}
	bad := map[string]ENISpec{
		"slot 41":            {Slot: 41, Name: "ens5"},
		"negative slot":      {Slot: -1, Name: "ens5"},
		"no name":            {Slot: 0},
		"name too long":      {Slot: 0, Name: "ens5678901234567"},
		"bad MAC":            {Slot: 0, Name: "ens5", MAC: "02:00"},
		"IP in other subnet": {Slot: 0, Name: "ens5", PrivateIPs: []string{"10.99.1.10"}},
		"router address":     {Slot: 0, Name: "ens5", PrivateIPs: []string{"10.99.0.1"}},
		"prefix outside":     {Slot: 0, Name: "ens5", IPv4Prefixes: []string{"10.99.1.0/28"}},
	}
	for name, spec := range bad {
		if err := spec.normalize(); err == nil {
			t.Errorf("%s: normalize accepted %+v", name, spec)
		}
	}
}

func TestInstancePathsMustBeAbsolute(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/systemd/network/80-ec2.network": "etc/systemd/network/80-ec2.network",
		"/run/../run/x":                       "run/x",
	} {
		if got, err := instanceRel(in); err != nil || got != want {
			t.Errorf("instanceRel(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"etc/x", "/", ""} {
		if _, err := instanceRel(in); err == nil {
			t.Errorf("instanceRel(%q) accepted", in)
		}
	}
}
