package core_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// A raw IMDS tree as one fuzzable string: records "dir\x1fkey\x1fvalue" joined by "\x1e".
const (
	fieldSep  = "\x1f"
	recordSep = "\x1e"
)

func encodeTree(raw core.RawInstance) string {
	var recs []string
	for _, dir := range slices.Sorted(maps.Keys(raw.ENIs)) {
		for _, key := range slices.Sorted(maps.Keys(raw.ENIs[dir])) {
			recs = append(recs, dir+fieldSep+key+fieldSep+raw.ENIs[dir][key])
		}
	}
	return strings.Join(recs, recordSep)
}

func decodeTree(primary, tree string) core.RawInstance {
	raw := core.RawInstance{PrimaryMAC: primary, ENIs: map[string]map[string]string{}}
	for rec := range strings.SplitSeq(tree, recordSep) {
		dir, rest, _ := strings.Cut(rec, fieldSep)
		key, value, _ := strings.Cut(rest, fieldSep)
		if raw.ENIs[dir] == nil {
			raw.ENIs[dir] = map[string]string{}
		}
		raw.ENIs[dir][key] = value
	}
	return raw
}

// linksFor gives every MAC directory a link (ena, in directory order) and a VLAN on the first,
// so the planner sees links in and out of IMDS.
func linksFor(raw core.RawInstance) []core.Link {
	var links []core.Link
	for i, dir := range slices.Sorted(maps.Keys(raw.ENIs)) {
		links = append(links, core.Link{Name: "eth" + strconv.Itoa(i), Index: i + 2, MAC: dir, Driver: "ena"})
	}
	if len(links) > 0 {
		links = append(links, core.Link{Name: "eth0.7", Index: 100, MAC: links[0].MAC, Kind: "vlan"})
	}
	return links
}

// rawOf prints a parsed ENI back in IMDS's form: what ParseInstance must accept as the same ENI.
func rawOf(e core.ENI) map[string]string {
	join := func(items []string) string { return strings.Join(items, "\n") }
	addrs := func(as []netip.Addr) string {
		s := make([]string, len(as))
		for i, a := range as {
			s[i] = a.String()
		}
		return join(s)
	}
	prefixes := func(ps []netip.Prefix) string {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = p.String()
		}
		return join(s)
	}
	m := map[string]string{
		core.KeyDeviceNumber: strconv.Itoa(e.DeviceNumber), core.KeyNetworkCard: strconv.Itoa(e.NetworkCard),
		core.KeyInterfaceID: e.InterfaceID, core.KeyLocalIPv4s: addrs(e.LocalIPv4s), core.KeyIPv6s: addrs(e.IPv6s),
		core.KeyIPv4Prefix: prefixes(e.IPv4Prefixes), core.KeyIPv6Prefix: prefixes(e.IPv6Prefixes),
		core.KeySubnetIPv6CIDR: prefixes(e.SubnetIPv6), core.KeyVPCIPv4CIDRs: prefixes(e.VPCIPv4),
		core.KeyVPCIPv6CIDRs: prefixes(e.VPCIPv6),
	}
	if e.SubnetIPv4.IsValid() {
		m[core.KeySubnetIPv4CIDR] = e.SubnetIPv4.String()
	}
	return m
}

// FuzzParseAndPlan feeds arbitrary IMDS trees through ParseInstance and NewPlan, seeded with every
// scenario. Beyond not panicking: parsing and planning are deterministic, parse accepts what it
// printed, every rule is in the owned band, every planned address, rule and gateway lies in the
// ENI's subnet (a state that can work), and prefix expansion stays bounded.
func FuzzParseAndPlan(f *testing.F) {
	files, err := filepath.Glob("../testdata/scenarios/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		sc, err := scenario.Load(file)
		if err != nil {
			f.Fatal(err)
		}
		raw := sc.Raw()
		f.Add(raw.PrimaryMAC, encodeTree(raw), false, false, "")
		f.Add(raw.PrimaryMAC, encodeTree(raw), true, true, "eth[12]")
	}
	f.Fuzz(func(t *testing.T, primary, tree string, assign, primaryRules bool, exclude string) {
		raw := decodeTree(primary, tree)
		inst, err := core.ParseInstance(raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "imds: meta-data/mac: ") || len(err.Error()) > 400 {
				t.Fatalf("ParseInstance error %q: want one naming meta-data/mac, short", err)
			}
			return
		}
		again, _ := core.ParseInstance(raw)
		if !reflect.DeepEqual(inst, again) {
			t.Fatalf("ParseInstance is not deterministic:\n%+v\n%+v", inst, again)
		}
		for _, p := range inst.Problems {
			if len(p.Reason) > 4096 {
				t.Errorf("problem reason of %d bytes for %s", len(p.Reason), p.MAC)
			}
		}
		checkRoundTrip(t, inst)

		opts := core.DefaultPlanOptions()
		opts.AssignPrefixAddresses, opts.PrimaryRules = assign, primaryRules
		if exclude != "" {
			opts.Exclude = []string{exclude}
		}
		links := linksFor(raw)
		plan := core.NewPlan(inst, links, opts)
		reversed := slices.Clone(links)
		slices.Reverse(reversed)
		if !reflect.DeepEqual(plan, core.NewPlan(inst, reversed, opts)) {
			t.Fatal("NewPlan depends on the order of the links")
		}
		if _, err := json.Marshal(plan); err != nil {
			t.Fatalf("plan does not marshal: %v", err)
		}
		if err := core.WriteText(io.Discard, plan); err != nil {
			t.Fatal(err)
		}
		enis := map[string]core.ENI{}
		for _, e := range inst.ENIs {
			enis[e.MAC] = e
		}
		for _, ifc := range plan.Interfaces {
			checkPossible(t, ifc, enis[ifc.MAC])
		}
	})
}

func checkRoundTrip(t *testing.T, inst core.Instance) {
	t.Helper()
	if len(inst.ENIs) == 0 {
		return
	}
	printed := core.RawInstance{PrimaryMAC: inst.PrimaryMAC, ENIs: map[string]map[string]string{}}
	for _, e := range inst.ENIs {
		printed.ENIs[e.MAC] = rawOf(e)
	}
	reparsed, err := core.ParseInstance(printed)
	if err != nil {
		t.Fatalf("ParseInstance rejects what it printed: %v", err)
	}
	if diff := cmp.Diff(inst.ENIs, reparsed.ENIs, netipComparers); diff != "" || len(reparsed.Problems) > 0 {
		t.Fatalf("printed ENIs parse differently (-first +again):\n%s\nproblems: %v", diff, reparsed.Problems)
	}
}

func checkPossible(t *testing.T, ifc core.InterfacePlan, e core.ENI) {
	t.Helper()
	if !core.OwnsRule(ifc.Priority, ifc.Table) {
		t.Errorf("%s: table %d priority %d outside the owned band", ifc.Name, ifc.Table, ifc.Priority)
	}
	for _, r := range ifc.Rules {
		if !core.OwnsRule(r.Priority, r.Table) || r.Table != ifc.Table {
			t.Errorf("%s: rule %+v outside the band or not in the ENI's table %d", ifc.Name, r, ifc.Table)
		}
		// Rules for addresses stay in the subnet; those for delegated prefixes need not, but
		// never take a whole subnet (see checkPlannable).
		subnets := e.SubnetIPv6
		if r.Family == core.IPv4 {
			subnets = []netip.Prefix{ifc.SubnetIPv4}
		}
		inSubnet := slices.ContainsFunc(subnets, func(s netip.Prefix) bool { return within(r.From, s) })
		isAddress := slices.Contains(e.LocalIPv4s, r.From.Addr()) || slices.Contains(e.IPv6s, r.From.Addr())
		if r.From.IsSingleIP() && isAddress && !inSubnet {
			t.Errorf("%s: rule from %s outside subnets %v", ifc.Name, r.From, subnets)
		}
		if slices.ContainsFunc(subnets, func(s netip.Prefix) bool { return within(s, r.From) }) {
			t.Errorf("%s: rule from %s takes a whole subnet %v", ifc.Name, r.From, subnets)
		}
	}
	for _, a := range ifc.Addresses {
		if a.Addr().Is6() {
			// Only further ipv6s are assigned: the first is the DHCPv6 address.
			if a.Bits() != 128 || !slices.Contains(e.IPv6s[min(1, len(e.IPv6s)):], a.Addr()) || a.Addr() == e.IPv6s[0] {
				t.Errorf("%s: address %s is not a further ipv6s entry of %v", ifc.Name, a, e.IPv6s)
			}
			continue
		}
		if !within(a, ifc.SubnetIPv4) && !slices.ContainsFunc(e.IPv4Prefixes, func(p netip.Prefix) bool { return within(a, p) }) {
			t.Errorf("%s: address %s neither in subnet %s nor in a delegated prefix", ifc.Name, a, ifc.SubnetIPv4)
		}
	}
	if max := len(e.LocalIPv4s) + len(e.IPv6s) + 256*len(e.IPv4Prefixes); len(ifc.Addresses) > max {
		t.Errorf("%s: %d addresses from %d local addresses and %d prefixes", ifc.Name, len(ifc.Addresses), len(e.LocalIPv4s), len(e.IPv4Prefixes))
	}
	for _, r := range ifc.Routes {
		if r.Table != ifc.Table {
			t.Errorf("%s: route %+v not in table %d", ifc.Name, r, ifc.Table)
		}
		if r.Gateway.IsValid() && !ifc.SubnetIPv4.Contains(r.Gateway) {
			t.Errorf("%s: gateway %s outside subnet %s", ifc.Name, r.Gateway, ifc.SubnetIPv4)
		}
	}
}

func within(p, outer netip.Prefix) bool {
	return outer.IsValid() && p.Bits() >= outer.Bits() && outer.Contains(p.Addr())
}

// FuzzENIValue sets one key of a valid secondary ENI to an arbitrary value: the value parsers'
// target. The ENI is then either valid (and survives the checks of FuzzParseAndPlan) or a
// problem whose reason names the ENI and stays short, whatever the value's size; the primary is
// planned either way (but for network-card).
func FuzzENIValue(f *testing.F) {
	for i, key := range core.ENIKeys {
		f.Add(uint8(i), twoENIs().ENIs[secondaryMAC][key])
	}
	for _, v := range []string{"10.0.1.6\n10.0.1.300", "2600:1f14:abc:de00::6\n2600:1f14:abc:de00:0:0:0:7", "10.0.1.0/33",
		"10.0.1.16/28\n10.0.1.32/28", "eni-0123456789abcdef0", "99", "-1", "10.0.1.6/32", strings.Repeat("1.2.3.4\n", 2000)} {
		f.Add(uint8(0), v)
		f.Add(uint8(3), v)
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		raw := twoENIs()
		key := core.ENIKeys[int(which)%len(core.ENIKeys)]
		raw.ENIs[secondaryMAC][key] = value
		if key == core.KeyIPv6s || key == core.KeyIPv6Prefix {
			raw.ENIs[secondaryMAC][core.KeySubnetIPv6CIDR] = "2600:1f14:abc:de00::/56"
		}
		inst, err := core.ParseInstance(raw)
		if err != nil {
			t.Fatalf("ParseInstance: %v", err)
		}
		// (A network-card on one ENI makes the others wait for theirs: see ParseInstance.)
		if key != core.KeyNetworkCard && !slices.ContainsFunc(inst.ENIs, func(e core.ENI) bool { return e.MAC == primaryMAC }) {
			t.Fatalf("the primary ENI is not planned: %+v", inst)
		}
		for _, p := range inst.Problems {
			if p.MAC == primaryMAC && key == core.KeyNetworkCard {
				continue
			}
			if p.MAC != secondaryMAC || !strings.HasPrefix(p.Reason, secondaryMAC+": ") || len(p.Reason) > 2048 {
				t.Fatalf("problem %.300q (%d bytes) does not name %s or is long", p.Reason, len(p.Reason), secondaryMAC)
			}
		}
		checkRoundTrip(t, inst)
		links := linksFor(raw)
		plan := core.NewPlan(inst, links, core.DefaultPlanOptions())
		enis := map[string]core.ENI{}
		for _, e := range inst.ENIs {
			enis[e.MAC] = e
		}
		for _, ifc := range plan.Interfaces {
			checkPossible(t, ifc, enis[ifc.MAC])
		}
	})
}
