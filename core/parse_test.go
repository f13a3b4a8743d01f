package core_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// netipComparers let cmp compare netip values (unexported fields) by value, which is also how the
// agent compares them: an uncompressed IPv6 form from IMDS must equal the compressed one.
var netipComparers = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

const (
	primaryMAC   = "02:00:00:00:05:05"
	secondaryMAC = "02:00:00:00:06:06"
)

// twoENIs is a valid instance: the primary and one secondary ENI, IPv4 only, one card.
func twoENIs() core.RawInstance {
	return core.RawInstance{PrimaryMAC: primaryMAC, ENIs: map[string]map[string]string{
		primaryMAC: {
			"device-number": "0", "interface-id": "eni-00000000000000005",
			"local-ipv4s": "10.0.0.5\n10.0.0.9", "subnet-ipv4-cidr-block": "10.0.0.0/24",
		},
		secondaryMAC: {
			"device-number": "1", "interface-id": "eni-00000000000000006",
			"local-ipv4s": "10.0.1.6", "subnet-ipv4-cidr-block": "10.0.1.0/24",
		},
	}}
}

func addrList(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func prefixList(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func eniMACs(inst core.Instance) []string {
	var out []string
	for _, e := range inst.ENIs {
		out = append(out, e.MAC)
	}
	return out
}

func TestParseInstanceReadsEveryKeyAsWhatItIs(t *testing.T) {
	raw := core.RawInstance{PrimaryMAC: " 02:00:00:00:05:05\n", ENIs: map[string]map[string]string{
		"02:00:00:00:05:05": {
			"device-number": "0", "network-card": "0", "interface-id": "eni-00000000000000005",
			"local-ipv4s": "10.0.0.5", "subnet-ipv4-cidr-block": "10.0.0.0/24",
		},
		// Upper-case MAC directory, CRLF and blank lines, trailing newline, uncompressed IPv6:
		// all of it must come out in one canonical form.
		"02:00:00:00:06:0A": {
			"device-number":           "1\n",
			"network-card":            "0",
			"interface-id":            " eni-0a1b2c3d ",
			"local-ipv4s":             "10.0.1.9\r\n10.0.1.6\n\n10.0.1.9\n",
			"ipv6s":                   "2600:1F14:0ABC:DE00:0:0:0:6\n2600:1f14:abc:de00::7",
			"ipv4-prefix":             "10.0.1.32/28\n10.0.1.48/28",
			"ipv6-prefix":             "2600:1f14:abc:de00:0:0:0:0/80",
			"subnet-ipv4-cidr-block":  "10.0.1.0/24",
			"subnet-ipv6-cidr-blocks": "2600:1f14:abc:de00:0:0:0:0/64",
			"vpc-ipv4-cidr-blocks":    "10.0.0.0/16\n100.64.0.0/16",
			"vpc-ipv6-cidr-blocks":    "2600:1f14:abc:de00::/56",
		},
	}}
	got, err := core.ParseInstance(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := core.Instance{
		PrimaryMAC: primaryMAC,
		ENIs: []core.ENI{
			{
				MAC: primaryMAC, InterfaceID: "eni-00000000000000005",
				LocalIPv4s: addrList("10.0.0.5"), SubnetIPv4: netip.MustParsePrefix("10.0.0.0/24"),
			},
			{
				MAC: "02:00:00:00:06:0a", InterfaceID: "eni-0a1b2c3d", DeviceNumber: 1,
				// IMDS order kept (first = primary address, never sorted: #63), duplicate dropped.
				LocalIPv4s:   addrList("10.0.1.9", "10.0.1.6"),
				IPv6s:        addrList("2600:1f14:abc:de00::6", "2600:1f14:abc:de00::7"),
				IPv4Prefixes: prefixList("10.0.1.32/28", "10.0.1.48/28"),
				IPv6Prefixes: prefixList("2600:1f14:abc:de00::/80"),
				SubnetIPv4:   netip.MustParsePrefix("10.0.1.0/24"),
				SubnetIPv6:   prefixList("2600:1f14:abc:de00::/64"),
				VPCIPv4:      prefixList("10.0.0.0/16", "100.64.0.0/16"),
				VPCIPv6:      prefixList("2600:1f14:abc:de00::/56"),
			},
		},
		Problems: []core.ENIProblem{},
	}
	if diff := cmp.Diff(want, got, netipComparers); diff != "" {
		t.Errorf("ParseInstance (-want +got):\n%s", diff)
	}
}

// TestParseInstanceIPv6IsCanonical: 1.x churned IPv6 rules because IMDS's uncompressed prefix
// string never equalled the kernel's compressed one (amazon-ec2-net-utils #68).
func TestParseInstanceIPv6IsCanonical(t *testing.T) {
	raw := twoENIs()
	raw.ENIs[secondaryMAC]["ipv6s"] = "2600:1f14:0abc:de00:0000:0000:0000:0006"
	raw.ENIs[secondaryMAC]["ipv6-prefix"] = "2600:1f14:abc:de00:0:0:0:0/80"
	raw.ENIs[secondaryMAC]["subnet-ipv6-cidr-blocks"] = "2600:1F14:ABC:DE00:0:0:0:0/64"
	inst, err := core.ParseInstance(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(inst.ENIs) != 2 {
		t.Fatalf("ENIs = %v, problems %v", eniMACs(inst), inst.Problems)
	}
	e := inst.ENIs[1]
	got := []string{e.IPv6s[0].String(), e.IPv6Prefixes[0].String(), e.SubnetIPv6[0].String()}
	want := []string{"2600:1f14:abc:de00::6", "2600:1f14:abc:de00::/80", "2600:1f14:abc:de00::/64"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IPv6 values are not canonical (-want +got):\n%s", diff)
	}
}

func TestParseInstancePrimaryMACIsTheOnlyError(t *testing.T) {
	for _, mac := range []string{"", "  ", "02:00:00:00:05", "zz:00:00:00:05:05", "02:00:00:00:00:00:00:05"} {
		raw := twoENIs()
		raw.PrimaryMAC = mac
		inst, err := core.ParseInstance(raw)
		if err == nil {
			t.Errorf("PrimaryMAC %q: no error, got %+v", mac, inst)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "meta-data/mac") || !strings.Contains(msg, `"`+mac+`"`) {
			t.Errorf("PrimaryMAC %q: error %q does not name meta-data/mac and the value", mac, msg)
		}
	}
}

// TestParseInstanceProblems: every rule that keeps an ENI out of the snapshot, one per row. The
// other ENI always stays, and each reason names the MAC and the key.
func TestParseInstanceProblems(t *testing.T) {
	type edit func(r *core.RawInstance)
	set := func(mac, key, value string) edit {
		return func(r *core.RawInstance) { r.ENIs[mac][key] = value }
	}
	del := func(mac string, keys ...string) edit {
		return func(r *core.RawInstance) {
			for _, k := range keys {
				delete(r.ENIs[mac], k)
			}
		}
	}
	const s = secondaryMAC
	invalid := func(reason string) core.ENIProblem {
		return core.ENIProblem{MAC: s, Kind: core.ProblemInvalid, Reason: s + ": " + reason}
	}
	pending := func(reason string) core.ENIProblem {
		return core.ENIProblem{MAC: s, Kind: core.ProblemNotPropagated, Reason: s + ": " + reason}
	}
	tests := []struct {
		name  string
		edits []edit
		want  core.ENIProblem
	}{
		// Malformed values: invalid, needs a human.
		{"IPv4 address out of range", []edit{set(s, "local-ipv4s", "10.0.1.6\n10.0.1.300")},
			invalid(`local-ipv4s: "10.0.1.300" is not an IP address`)},
		{"IPv6 address in local-ipv4s", []edit{set(s, "local-ipv4s", "2600::6")},
			invalid(`local-ipv4s: "2600::6" is not an IPv4 address`)},
		{"IPv4 address in ipv6s", []edit{set(s, "ipv6s", "10.0.1.7"), set(s, "subnet-ipv6-cidr-blocks", "2600::/64")},
			invalid(`ipv6s: "10.0.1.7" is not an IPv6 address`)},
		{"IPv4-mapped address in ipv6s", []edit{set(s, "ipv6s", "::ffff:10.0.1.7"), set(s, "subnet-ipv6-cidr-blocks", "2600::/64")},
			invalid(`ipv6s: "::ffff:10.0.1.7" is not an IPv6 address`)},
		{"zoned address in ipv6s", []edit{set(s, "ipv6s", "fe80::1%ens6"), set(s, "subnet-ipv6-cidr-blocks", "2600::/64")},
			invalid(`ipv6s: "fe80::1%ens6" is not an IPv6 address`)},
		{"subnet is an address with a mask", []edit{set(s, "subnet-ipv4-cidr-block", "10.0.1.5/24")},
			invalid(`subnet-ipv4-cidr-block: "10.0.1.5/24" is not a network address (want "10.0.1.0/24")`)},
		{"subnet mask too long", []edit{set(s, "subnet-ipv4-cidr-block", "10.0.1.0/33")},
			invalid(`subnet-ipv4-cidr-block: "10.0.1.0/33" is not a CIDR block`)},
		{"subnet without mask", []edit{set(s, "subnet-ipv4-cidr-block", "10.0.1.0")},
			invalid(`subnet-ipv4-cidr-block: "10.0.1.0" is not a CIDR block`)},
		{"two IPv4 subnets", []edit{set(s, "subnet-ipv4-cidr-block", "10.0.1.0/24\n10.0.2.0/24")},
			invalid(`subnet-ipv4-cidr-block: has 2 CIDR blocks, want one`)},
		{"IPv6 subnet in the IPv4 key", []edit{set(s, "subnet-ipv4-cidr-block", "2600::/64")},
			invalid(`subnet-ipv4-cidr-block: "2600::/64" is not an IPv4 CIDR block`)},
		{"unmasked IPv6 prefix", []edit{set(s, "ipv6-prefix", "2600:1f14:abc:de00:0:0:0:1/80")},
			invalid(`ipv6-prefix: "2600:1f14:abc:de00:0:0:0:1/80" is not a network address (want "2600:1f14:abc:de00::/80")`)},
		{"IPv6 prefix in ipv4-prefix", []edit{set(s, "ipv4-prefix", "2600::/80")},
			invalid(`ipv4-prefix: "2600::/80" is not an IPv4 CIDR block`)},
		{"IPv4 block in subnet-ipv6-cidr-blocks", []edit{set(s, "subnet-ipv6-cidr-blocks", "10.0.0.0/16")},
			invalid(`subnet-ipv6-cidr-blocks: "10.0.0.0/16" is not an IPv6 CIDR block`)},
		{"garbage in vpc-ipv4-cidr-blocks", []edit{set(s, "vpc-ipv4-cidr-blocks", "10.0.0.0/16\nnone")},
			invalid(`vpc-ipv4-cidr-blocks: "none" is not a CIDR block`)},
		{"garbage in vpc-ipv6-cidr-blocks", []edit{set(s, "vpc-ipv6-cidr-blocks", "2600::/56x")},
			invalid(`vpc-ipv6-cidr-blocks: "2600::/56x" is not a CIDR block`)},
		{"device-number not a number", []edit{set(s, "device-number", "one")},
			invalid(`device-number: "one" is not a number`)},
		{"device-number negative", []edit{set(s, "device-number", "-1")},
			invalid(`device-number: "-1" is out of range 0..99`)},
		{"device-number in the next card's band", []edit{set(s, "device-number", "100")},
			invalid(`device-number: "100" is out of range 0..99`)},
		{"device-number with a dot", []edit{set(s, "device-number", "1.0")},
			invalid(`device-number: "1.0" is not a number`)},
		{"device-number twice", []edit{set(s, "device-number", "1\n2")},
			invalid(`device-number: has 2 lines, want one value`)},
		{"network-card out of range", []edit{set(primaryMAC, "network-card", "0"), set(s, "network-card", "100")},
			invalid(`network-card: "100" is out of range 0..99`)},
		{"interface-id of an instance", []edit{set(s, "interface-id", "i-0123456789abcdef0")},
			invalid(`interface-id: "i-0123456789abcdef0" is not an ENI id (eni-<hex>)`)},
		{"interface-id upper case", []edit{set(s, "interface-id", "eni-ABC")},
			invalid(`interface-id: "eni-ABC" is not an ENI id (eni-<hex>)`)},
		{"interface-id without hex", []edit{set(s, "interface-id", "eni-")},
			invalid(`interface-id: "eni-" is not an ENI id (eni-<hex>)`)},
		{"every bad value is reported", []edit{set(s, "device-number", "x"), set(s, "local-ipv4s", "10.0.1.300")},
			invalid(`device-number: "x" is not a number; local-ipv4s: "10.0.1.300" is not an IP address`)},
		{"bad value wins over a missing key", []edit{del(s, "interface-id"), set(s, "local-ipv4s", "nope")},
			invalid(`local-ipv4s: "nope" is not an IP address`)},
		{"a long value is quoted truncated", []edit{set(s, "local-ipv4s", strings.Repeat("x", 10000))},
			invalid(`local-ipv4s: "` + strings.Repeat("x", 64) + `"…(10000 bytes) is not an IP address`)},
		{"many bad lines: the first few are reported", []edit{set(s, "local-ipv4s", strings.Repeat("bad\n", 100))},
			invalid(strings.Repeat(`local-ipv4s: "bad" is not an IP address; `, 5) + "and 95 more")},

		// Values that parse but cannot be planned: invalid too (#14).
		{"secondary IP outside its subnet", []edit{set(s, "local-ipv4s", "10.0.1.6\n10.0.2.7")},
			invalid(`local-ipv4s: 10.0.2.7 is outside subnet-ipv4-cidr-block 10.0.1.0/24`)},
		{"primary IP outside its subnet", []edit{set(s, "local-ipv4s", "10.0.2.6")},
			invalid(`local-ipv4s: 10.0.2.6 is outside subnet-ipv4-cidr-block 10.0.1.0/24`)},
		{"address is the subnet's router", []edit{set(s, "local-ipv4s", "10.0.1.6\n10.0.1.1")},
			invalid(`local-ipv4s: 10.0.1.1 is the subnet's router (its base address + 1)`)},
		{"address is the subnet's network address", []edit{set(s, "local-ipv4s", "10.0.1.0\n10.0.1.6")},
			invalid(`local-ipv4s: 10.0.1.0 is the subnet's network address`)},
		{"/32 subnet: the router would be outside it", []edit{set(s, "subnet-ipv4-cidr-block", "10.0.1.6/32"), set(s, "local-ipv4s", "10.0.1.6")},
			invalid(`subnet-ipv4-cidr-block: 10.0.1.6/32 is longer than /28, the smallest EC2 subnet`)},
		{"/31 subnet", []edit{set(s, "subnet-ipv4-cidr-block", "10.0.1.6/31"), set(s, "local-ipv4s", "10.0.1.6")},
			invalid(`subnet-ipv4-cidr-block: 10.0.1.6/31 is longer than /28, the smallest EC2 subnet`)},
		{"delegated prefix holding the whole subnet (fuzz finding)", []edit{set(s, "ipv4-prefix", "0.0.0.0/0")},
			invalid(`ipv4-prefix: 0.0.0.0/0 contains the whole subnet 10.0.1.0/24: its source rule would take the subnet's traffic`)},
		{"delegated prefix equal to the subnet", []edit{set(s, "ipv4-prefix", "10.0.1.0/24")},
			invalid(`ipv4-prefix: 10.0.1.0/24 contains the whole subnet 10.0.1.0/24: its source rule would take the subnet's traffic`)},
		{"delegated IPv6 prefix holding the subnet", []edit{set(s, "ipv6s", "2600::6"), set(s, "ipv6-prefix", "::/0"), set(s, "subnet-ipv6-cidr-blocks", "2600::/64")},
			invalid(`ipv6-prefix: ::/0 contains the whole subnet 2600::/64: its source rule would take the subnet's traffic`)},
		{"IPv6 address outside its subnet", []edit{set(s, "ipv6s", "2600:1::6"), set(s, "subnet-ipv6-cidr-blocks", "2600::/64")},
			invalid(`ipv6s: 2600:1::6 is outside subnet-ipv6-cidr-blocks 2600::/64`)},
		{"IPv6-only ENI with an address outside its subnet", []edit{del(s, "local-ipv4s", "subnet-ipv4-cidr-block"), set(s, "ipv6s", "2600:1::6"), set(s, "subnet-ipv6-cidr-blocks", "2600::/64")},
			invalid(`ipv6s: 2600:1::6 is outside subnet-ipv6-cidr-blocks 2600::/64`)},

		// Missing keys: not propagated yet, retried.
		{"device-number missing", []edit{del(s, "device-number")},
			pending("device-number is not in IMDS yet")},
		{"device-number empty", []edit{set(s, "device-number", " \n")},
			pending("device-number is not in IMDS yet")},
		{"interface-id missing", []edit{del(s, "interface-id")},
			pending("interface-id is not in IMDS yet")},
		{"addresses without subnet", []edit{del(s, "subnet-ipv4-cidr-block")},
			pending("local-ipv4s is present but subnet-ipv4-cidr-block is not")},
		{"subnet without addresses", []edit{del(s, "local-ipv4s")},
			pending("subnet-ipv4-cidr-block is present but local-ipv4s is not")},
		{"empty local-ipv4s is not an empty list", []edit{set(s, "local-ipv4s", "")},
			pending("subnet-ipv4-cidr-block is present but local-ipv4s is not")},
		{"no address of either family", []edit{del(s, "local-ipv4s", "subnet-ipv4-cidr-block"), set(s, "subnet-ipv6-cidr-blocks", "2600::/64")},
			pending("neither local-ipv4s nor ipv6s is in IMDS yet")},
		{"IPv6-only without subnet", []edit{del(s, "local-ipv4s", "subnet-ipv4-cidr-block"), set(s, "ipv6s", "2600::6")},
			pending("ipv6s is present but subnet-ipv6-cidr-blocks is not")},
		{"dual stack, IPv6 subnet still missing", []edit{set(s, "ipv6s", "2600::6")},
			pending("ipv6s is present but subnet-ipv6-cidr-blocks is not")},
		{"several keys missing", []edit{del(s, "device-number", "interface-id", "subnet-ipv4-cidr-block")},
			pending("device-number is not in IMDS yet; interface-id is not in IMDS yet; local-ipv4s is present but subnet-ipv4-cidr-block is not")},
		{"secondary on device 0 of card 0 (#90)", []edit{set(s, "device-number", "0")},
			pending("device-number is 0 on network-card 0, which IMDS reports for a secondary ENI until it has propagated")},
		{"secondary on device 0, card 0 given explicitly", []edit{set(s, "device-number", "0"), set(s, "network-card", "0"), set(primaryMAC, "network-card", "0")},
			pending("device-number is 0 on network-card 0, which IMDS reports for a secondary ENI until it has propagated")},
		{"network-card missing on a multi-card instance (#153)", []edit{set(primaryMAC, "network-card", "0")},
			pending("network-card is not in IMDS yet, although other ENIs of this instance have it")},
		{"same slot as the primary", []edit{set(primaryMAC, "device-number", "1")},
			pending("device-number 1 on network-card 0 is also claimed by " + primaryMAC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := twoENIs()
			for _, e := range tt.edits {
				e(&raw)
			}
			inst, err := core.ParseInstance(raw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]core.ENIProblem{tt.want}, inst.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{primaryMAC}, eniMACs(inst)); diff != "" {
				t.Errorf("the primary ENI must still be planned (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseInstanceAccepts: legitimate shapes that must not be mistaken for problems.
func TestParseInstanceAccepts(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *core.RawInstance)
		check func(t *testing.T, e core.ENI)
	}{
		{"IPv6-only subnet: the IPv4 keys are absent", func(r *core.RawInstance) {
			delete(r.ENIs[secondaryMAC], "local-ipv4s")
			delete(r.ENIs[secondaryMAC], "subnet-ipv4-cidr-block")
			r.ENIs[secondaryMAC]["ipv6s"] = "2600:1f14:abc:de00::6"
			r.ENIs[secondaryMAC]["subnet-ipv6-cidr-blocks"] = "2600:1f14:abc:de00::/64"
		}, func(t *testing.T, e core.ENI) {
			if e.SubnetIPv4.IsValid() || len(e.LocalIPv4s) != 0 || len(e.IPv6s) != 1 {
				t.Errorf("got %+v", e)
			}
		}},
		{"dual-stack subnet, no IPv6 address on the ENI", func(r *core.RawInstance) {
			r.ENIs[secondaryMAC]["subnet-ipv6-cidr-blocks"] = "2600:1f14:abc:de00::/64"
		}, func(t *testing.T, e core.ENI) {
			if len(e.IPv6s) != 0 || len(e.SubnetIPv6) != 1 {
				t.Errorf("got %+v", e)
			}
		}},
		{"network-card 404 on a single-card instance means card 0", func(r *core.RawInstance) {}, func(t *testing.T, e core.ENI) {
			if e.NetworkCard != 0 || e.DeviceNumber != 1 {
				t.Errorf("got card %d device %d", e.NetworkCard, e.DeviceNumber)
			}
		}},
		{"device 0 on card 1 is a real secondary", func(r *core.RawInstance) {
			r.ENIs[primaryMAC]["network-card"] = "0"
			r.ENIs[secondaryMAC]["network-card"] = "1"
			r.ENIs[secondaryMAC]["device-number"] = "0"
		}, func(t *testing.T, e core.ENI) {
			if e.NetworkCard != 1 || e.DeviceNumber != 0 {
				t.Errorf("got card %d device %d", e.NetworkCard, e.DeviceNumber)
			}
		}},
		{"empty optional keys are absent", func(r *core.RawInstance) {
			r.ENIs[secondaryMAC]["ipv4-prefix"] = ""
			r.ENIs[secondaryMAC]["ipv6-prefix"] = "\n"
			r.ENIs[secondaryMAC]["network-card"] = " "
		}, func(t *testing.T, e core.ENI) {
			if e.IPv4Prefixes != nil || e.IPv6Prefixes != nil || e.NetworkCard != 0 {
				t.Errorf("got %+v", e)
			}
		}},
		{"addresses inside one of two IPv6 subnets each; delegated prefixes inside or not (1.x's test data)", func(r *core.RawInstance) {
			r.ENIs[secondaryMAC]["ipv4-prefix"] = "10.0.1.16/28\n172.16.1.0/24"
			r.ENIs[secondaryMAC]["ipv6s"] = "2600:1f14:abc:de00::6\n2600:1f14:abc:de01::6"
			r.ENIs[secondaryMAC]["ipv6-prefix"] = "2600:1f14:abc:de01:1::/80"
			r.ENIs[secondaryMAC]["subnet-ipv6-cidr-blocks"] = "2600:1f14:abc:de00::/64\n2600:1f14:abc:de01::/64"
		}, func(t *testing.T, e core.ENI) {
			if len(e.IPv4Prefixes) != 2 || len(e.IPv6s) != 2 || len(e.IPv6Prefixes) != 1 {
				t.Errorf("got %+v", e)
			}
		}},
		{"a /28 subnet, the smallest EC2 has", func(r *core.RawInstance) {
			r.ENIs[secondaryMAC]["subnet-ipv4-cidr-block"] = "10.0.1.0/28"
			r.ENIs[secondaryMAC]["local-ipv4s"] = "10.0.1.6\n10.0.1.14"
		}, func(t *testing.T, e core.ENI) {
			if e.SubnetIPv4.Bits() != 28 || len(e.LocalIPv4s) != 2 {
				t.Errorf("got %+v", e)
			}
		}},
		{"highest device and card numbers", func(r *core.RawInstance) {
			r.ENIs[primaryMAC]["network-card"] = "0"
			r.ENIs[secondaryMAC]["network-card"] = "99"
			r.ENIs[secondaryMAC]["device-number"] = "99"
		}, func(t *testing.T, e core.ENI) {
			if e.NetworkCard != 99 || e.DeviceNumber != 99 {
				t.Errorf("got card %d device %d", e.NetworkCard, e.DeviceNumber)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := twoENIs()
			tt.edit(&raw)
			inst, err := core.ParseInstance(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(inst.Problems) != 0 || len(inst.ENIs) != 2 {
				t.Fatalf("ENIs %v, problems %v", eniMACs(inst), inst.Problems)
			}
			tt.check(t, inst.ENIs[1])
		})
	}
}

func TestParseInstanceMACDirectories(t *testing.T) {
	t.Run("not a MAC", func(t *testing.T) {
		raw := twoENIs()
		raw.ENIs["02:00:00:00:07"] = map[string]string{"device-number": "2"}
		inst, err := core.ParseInstance(raw)
		if err != nil {
			t.Fatal(err)
		}
		want := []core.ENIProblem{{MAC: "02:00:00:00:07", Kind: core.ProblemInvalid,
			Reason: `02:00:00:00:07: network/interfaces/macs/ lists "02:00:00:00:07", which is not a MAC address`}}
		if diff := cmp.Diff(want, inst.Problems); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
		if len(inst.ENIs) != 2 {
			t.Errorf("ENIs = %v, want both valid ENIs", eniMACs(inst))
		}
	})
	t.Run("same MAC twice", func(t *testing.T) {
		raw := twoENIs()
		raw.ENIs["02:00:00:00:06:0A"] = map[string]string{
			"device-number": "2", "interface-id": "eni-0000000a",
			"local-ipv4s": "10.0.2.10", "subnet-ipv4-cidr-block": "10.0.2.0/24",
		}
		raw.ENIs["02:00:00:00:06:0a"] = map[string]string{"device-number": "3"}
		inst, err := core.ParseInstance(raw)
		if err != nil {
			t.Fatal(err)
		}
		want := []core.ENIProblem{{MAC: "02:00:00:00:06:0a", Kind: core.ProblemInvalid,
			Reason: `02:00:00:00:06:0a: network/interfaces/macs/ lists this MAC twice, as "02:00:00:00:06:0A" and "02:00:00:00:06:0a"`}}
		if diff := cmp.Diff(want, inst.Problems); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{primaryMAC, secondaryMAC, "02:00:00:00:06:0a"}, eniMACs(inst)); diff != "" {
			t.Errorf("the first directory of the MAC is read (-want +got):\n%s", diff)
		}
	})
}

// TestParseInstanceSlotConflicts: two ENIs on one (card, device) would share a route table.
func TestParseInstanceSlotConflicts(t *testing.T) {
	raw := twoENIs()
	raw.ENIs["02:00:00:00:07:07"] = map[string]string{
		"device-number": "1", "interface-id": "eni-00000000000000007",
		"local-ipv4s": "10.0.2.7", "subnet-ipv4-cidr-block": "10.0.2.0/24",
	}
	inst, err := core.ParseInstance(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []core.ENIProblem{
		{MAC: secondaryMAC, Kind: core.ProblemNotPropagated,
			Reason: secondaryMAC + ": device-number 1 on network-card 0 is also claimed by 02:00:00:00:07:07"},
		{MAC: "02:00:00:00:07:07", Kind: core.ProblemNotPropagated,
			Reason: "02:00:00:00:07:07: device-number 1 on network-card 0 is also claimed by " + secondaryMAC},
	}
	if diff := cmp.Diff(want, inst.Problems); diff != "" {
		t.Errorf("neither secondary may take table 10001 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{primaryMAC}, eniMACs(inst)); diff != "" {
		t.Errorf("ENIs (-want +got):\n%s", diff)
	}
}

func TestParseInstanceOrderIsDeterministic(t *testing.T) {
	eni := func(card, dev, ip string) map[string]string {
		return map[string]string{"device-number": dev, "network-card": card, "interface-id": "eni-0a",
			"local-ipv4s": "10.0." + ip + ".5", "subnet-ipv4-cidr-block": "10.0." + ip + ".0/24"}
	}
	raw := core.RawInstance{PrimaryMAC: "02:00:00:00:00:09", ENIs: map[string]map[string]string{
		"02:00:00:00:00:01": eni("1", "0", "1"),
		"02:00:00:00:00:02": eni("0", "2", "2"),
		"02:00:00:00:00:03": eni("0", "1", "3"),
		"02:00:00:00:00:09": eni("0", "0", "9"),
		"02:00:00:00:00:08": {"device-number": "3"},
		"02:00:00:00:00:04": {"device-number": "4"},
	}}
	first, err := core.ParseInstance(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"02:00:00:00:00:09", "02:00:00:00:00:03", "02:00:00:00:00:02", "02:00:00:00:00:01"}
	if diff := cmp.Diff(want, eniMACs(first)); diff != "" {
		t.Errorf("ENIs not sorted by (card, device, MAC) (-want +got):\n%s", diff)
	}
	if len(first.Problems) != 2 || first.Problems[0].MAC != "02:00:00:00:00:04" || first.Problems[1].MAC != "02:00:00:00:00:08" {
		t.Errorf("problems not sorted by MAC: %v", first.Problems)
	}
	for range 20 {
		again, err := core.ParseInstance(raw)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, again, netipComparers); diff != "" {
			t.Fatalf("ParseInstance is not deterministic:\n%s", diff)
		}
	}
}
