package core

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// maxDeviceNumber bounds device-number: one card's ENIs share the SlotsPerCard slots of its band
// (table 10000 + 100*card + device), so a device number of 100 would take the table of the next
// card's device 0. EC2 instance types attach far fewer ENIs per card than that. Network cards are
// bounded by MaxNetworkCard (0..99), which keeps every table and priority inside the owned band
// (10000..19999), clear of the main rule (32766) and the VPC CNI's priorities.
const maxDeviceNumber = SlotsPerCard - 1

// ParseInstance validates what IMDS served. It fails only when meta-data/mac itself is missing or
// malformed: without the primary MAC no ENI can be classified. Every other problem belongs to one
// ENI and lands in Instance.Problems, so one bad or half-propagated ENI never stops the others.
//
// The rules, in order, for each MAC directory:
//   - a value that does not parse as what it is (MAC, IP, masked CIDR, number in range, ENI id)
//     makes the ENI ProblemInvalid: that needs a human, retrying does not help;
//   - a required key that is missing or empty makes it ProblemNotPropagated: device-number,
//     interface-id, and the addresses with their subnet (local-ipv4s with subnet-ipv4-cidr-block,
//     or for an IPv6-only subnet ipv6s with subnet-ipv6-cidr-blocks), ipv6s without
//     subnet-ipv6-cidr-blocks, and network-card when another ENI of the instance has one, unless
//     the ENI is the primary (always card 0) or in RawInstance.AssumeCardZero;
//   - a non-primary ENI on device 0 of card 0 is not propagated: IMDS reports 0 until it knows
//     better (amazon-ec2-net-utils #90). The primary is the ENI whose MAC is meta-data/mac;
//   - ENIs claiming the same (network card, device number) are not propagated, except the primary;
//     an ENI on card 0 only by AssumeCardZero yields the slot to any ENI that claims it.
//
// An empty value counts as missing: IMDS has served empty bodies for keys still propagating
// (amazon-ec2-net-utils #153, #162), and an empty list must never look like "no addresses".
func ParseInstance(raw RawInstance) (Instance, error) {
	primary, ok := normalMAC(raw.PrimaryMAC)
	if !ok {
		return Instance{}, fmt.Errorf("imds: meta-data/mac: %s is not a MAC address", QuoteValue(raw.PrimaryMAC))
	}
	inst := Instance{PrimaryMAC: primary, ENIs: []ENI{}, Problems: []ENIProblem{}}

	// network-card exists only on instance types with several cards. There, an ENI without it is
	// still propagating, and reading the 404 as card 0 would give it another ENI's table (#153).
	multiCard := false
	for _, keys := range raw.ENIs {
		if strings.TrimSpace(keys[KeyNetworkCard]) != "" {
			multiCard = true
		}
	}

	dirs := make([]string, 0, len(raw.ENIs))
	for dir := range raw.ENIs {
		dirs = append(dirs, dir)
	}
	slices.Sort(dirs)

	assumed := make(map[string]bool, len(raw.AssumeCardZero))
	for _, dir := range raw.AssumeCardZero {
		if mac, ok := normalMAC(dir); ok {
			assumed[mac] = true
		}
	}
	fallback := map[string]bool{}              // MACs on card 0 only by assumption
	seen := make(map[string]string, len(dirs)) // MAC -> directory name it was read from
	for _, dir := range dirs {
		mac, ok := normalMAC(dir)
		switch {
		case !ok:
			inst.Problems = append(inst.Problems, ENIProblem{MAC: truncate(dir), Kind: ProblemInvalid,
				Reason: fmt.Sprintf("%s: network/interfaces/macs/ lists %s, which is not a MAC address", truncate(dir), QuoteValue(dir))})
			continue
		case seen[mac] != "":
			inst.Problems = append(inst.Problems, ENIProblem{MAC: mac, Kind: ProblemInvalid,
				Reason: fmt.Sprintf("%s: network/interfaces/macs/ lists this MAC twice, as %s and %s", mac, QuoteValue(seen[mac]), QuoteValue(dir))})
			continue
		}
		seen[mac] = dir
		// The primary is card 0 whatever the other ENIs say (amazon-ec2-net-utils does the same).
		needCard := multiCard && mac != primary && !assumed[mac]
		eni, problem := parseENI(mac, raw.ENIs[dir], mac == primary, needCard)
		if problem != nil {
			inst.Problems = append(inst.Problems, *problem)
			continue
		}
		if multiCard && strings.TrimSpace(raw.ENIs[dir][KeyNetworkCard]) == "" && mac != primary {
			fallback[mac] = true
		}
		inst.ENIs = append(inst.ENIs, eni)
	}

	inst.ENIs, inst.Problems = dropFallbackConflicts(inst.ENIs, inst.Problems, fallback)
	inst.ENIs, inst.Problems = dropSlotConflicts(inst.ENIs, inst.Problems, primary)

	slices.SortFunc(inst.ENIs, func(a, b ENI) int {
		return cmp.Or(cmp.Compare(a.NetworkCard, b.NetworkCard), cmp.Compare(a.DeviceNumber, b.DeviceNumber),
			cmp.Compare(a.MAC, b.MAC))
	})
	slices.SortFunc(inst.Problems, func(a, b ENIProblem) int {
		return cmp.Or(cmp.Compare(a.MAC, b.MAC), cmp.Compare(a.Reason, b.Reason))
	})
	return inst, nil
}

// dropSlotConflicts moves non-primary ENIs that share a (card, device) slot with another ENI to
// the problems: one of them is still propagating, and we cannot tell which, so neither gets the
// table until IMDS settles. Two tables with one number would mix two ENIs' routes.
func dropSlotConflicts(enis []ENI, problems []ENIProblem, primary string) ([]ENI, []ENIProblem) {
	bySlot := map[int][]string{}
	for _, e := range enis {
		s := Slot(e.NetworkCard, e.DeviceNumber)
		bySlot[s] = append(bySlot[s], e.MAC)
	}
	kept := make([]ENI, 0, len(enis))
	for _, e := range enis {
		claimants := bySlot[Slot(e.NetworkCard, e.DeviceNumber)]
		if len(claimants) == 1 || e.MAC == primary {
			kept = append(kept, e)
			continue
		}
		others := slices.DeleteFunc(slices.Clone(claimants), func(m string) bool { return m == e.MAC })
		slices.Sort(others)
		problems = append(problems, ENIProblem{MAC: e.MAC, Kind: ProblemNotPropagated,
			Reason: fmt.Sprintf("%s: device-number %d on network-card %d is also claimed by %s",
				e.MAC, e.DeviceNumber, e.NetworkCard, strings.Join(others, ", "))})
	}
	return kept, problems
}

// dropFallbackConflicts moves ENIs on card 0 only by assumption to the problems when another ENI
// claims the same slot: that one's claim rests on IMDS's word, the fallback's on a guess.
func dropFallbackConflicts(enis []ENI, problems []ENIProblem, fallback map[string]bool) ([]ENI, []ENIProblem) {
	if len(fallback) == 0 {
		return enis, problems
	}
	holders := map[int][]string{}
	for _, e := range enis {
		if !fallback[e.MAC] {
			s := Slot(e.NetworkCard, e.DeviceNumber)
			holders[s] = append(holders[s], e.MAC)
		}
	}
	kept := make([]ENI, 0, len(enis))
	for _, e := range enis {
		taken := holders[Slot(e.NetworkCard, e.DeviceNumber)]
		if !fallback[e.MAC] || len(taken) == 0 {
			kept = append(kept, e)
			continue
		}
		problems = append(problems, ENIProblem{MAC: e.MAC, Kind: ProblemNotPropagated,
			Reason: fmt.Sprintf("%s: network-card never appeared in IMDS, and its fallback, device-number %d on network-card 0, is taken by %s",
				e.MAC, e.DeviceNumber, strings.Join(taken, ", "))})
	}
	return kept, problems
}

// parseENI reads one MAC directory. It returns either a complete ENI or the reason it has none.
// needCard says that network-card must be present (other ENIs have it, and no fallback applies).
func parseENI(mac string, keys map[string]string, primary, needCard bool) (ENI, *ENIProblem) {
	r := eniReader{mac: mac, keys: keys}
	eni := ENI{MAC: mac}

	eni.DeviceNumber = r.number(KeyDeviceNumber, maxDeviceNumber)
	eni.NetworkCard = r.number(KeyNetworkCard, MaxNetworkCard)
	if id, ok := r.single(KeyInterfaceID); ok {
		if validENIID(id) {
			eni.InterfaceID = id
		} else {
			r.bad(KeyInterfaceID, "%s is not an ENI id (eni-<hex>)", QuoteValue(id))
		}
	}
	eni.LocalIPv4s = r.addrs(KeyLocalIPv4s, IPv4)
	eni.IPv6s = r.addrs(KeyIPv6s, IPv6)
	eni.IPv4Prefixes = r.prefixes(KeyIPv4Prefix, IPv4)
	eni.IPv6Prefixes = r.prefixes(KeyIPv6Prefix, IPv6)
	if p := r.prefixes(KeySubnetIPv4CIDR, IPv4); len(p) > 1 {
		r.bad(KeySubnetIPv4CIDR, "has %d CIDR blocks, want one", len(p))
	} else if len(p) == 1 {
		eni.SubnetIPv4 = p[0]
	}
	eni.SubnetIPv6 = r.prefixes(KeySubnetIPv6CIDR, IPv6)
	eni.VPCIPv4 = r.prefixes(KeyVPCIPv4CIDRs, IPv4)
	eni.VPCIPv6 = r.prefixes(KeyVPCIPv6CIDRs, IPv6)

	if len(r.invalid) == 0 {
		r.checkPlannable(eni)
	}
	if len(r.invalid) > 0 {
		reason := strings.Join(r.invalid, "; ")
		if r.more > 0 {
			reason += fmt.Sprintf("; and %d more", r.more)
		}
		return ENI{}, &ENIProblem{MAC: mac, Kind: ProblemInvalid, Reason: mac + ": " + reason}
	}

	var missing []string
	for _, k := range []string{KeyDeviceNumber, KeyInterfaceID} {
		if !r.has(k) {
			missing = append(missing, k+" is not in IMDS yet")
		}
	}
	v4, sub4, v6, sub6 := r.has(KeyLocalIPv4s), r.has(KeySubnetIPv4CIDR), r.has(KeyIPv6s), r.has(KeySubnetIPv6CIDR)
	switch {
	case v4 && !sub4:
		missing = append(missing, "local-ipv4s is present but subnet-ipv4-cidr-block is not")
	case sub4 && !v4:
		missing = append(missing, "subnet-ipv4-cidr-block is present but local-ipv4s is not")
	case !v4 && !v6:
		// Neither family: nothing to route yet. With only IPv6 keys the ENI is in an IPv6-only
		// subnet, and the v4 keys are legitimately absent.
		missing = append(missing, "neither local-ipv4s nor ipv6s is in IMDS yet")
	}
	if v6 && !sub6 {
		missing = append(missing, "ipv6s is present but subnet-ipv6-cidr-blocks is not")
	}
	if needCard && !r.has(KeyNetworkCard) {
		missing = append(missing, "network-card is not in IMDS yet, although other ENIs of this instance have it")
	}
	if len(missing) == 0 && !primary && eni.NetworkCard == 0 && eni.DeviceNumber == 0 {
		missing = append(missing, "device-number is 0 on network-card 0, which IMDS reports for a secondary ENI until it has propagated")
	}
	if len(missing) > 0 {
		return ENI{}, &ENIProblem{MAC: mac, Kind: ProblemNotPropagated, Reason: mac + ": " + strings.Join(missing, "; ")}
	}
	return eni, nil
}

// maxSubnetBits: EC2 subnets are /16 to /28 (IPv4). Only the upper bound is enforced: a longer
// prefix leaves no room for the router at base + 1 (a /32 puts it outside the subnet) or for the
// addresses EC2 reserves, so nothing planned for it could work. A shorter one still routes.
const maxSubnetBits = 28

// checkPlannable rejects values that parse but describe a state no EC2 ENI has and whose plan
// could not work: an address outside the ENI's subnet (the kernel would get an address it cannot
// reach the router from, the VPC would drop its traffic), the subnet's network address or router
// as an address, a subnet too small to hold its router. Only families whose subnet is known are
// checked: an ENI without it is not propagated, and an IPv6-only ENI has no IPv4 subnet.
//
// Delegated prefixes need not lie in the subnet. EC2 delegates them from the subnet's range, but a
// prefix elsewhere still makes a plan that works on the host (a source rule and, if asked,
// addresses), and amazon-ec2-net-utils 1.x's test data, which the ifcfg goldens replay,
// delegates prefixes from other ranges. A prefix holding the whole subnet is rejected.
func (r *eniReader) checkPlannable(e ENI) {
	if sub := e.SubnetIPv4; sub.IsValid() {
		if sub.Bits() > maxSubnetBits {
			r.bad(KeySubnetIPv4CIDR, "%s is longer than /%d, the smallest EC2 subnet", sub, maxSubnetBits)
			return
		}
		for _, a := range e.LocalIPv4s {
			switch {
			case !sub.Contains(a):
				r.bad(KeyLocalIPv4s, "%s is outside %s %s", a, KeySubnetIPv4CIDR, sub)
			case a == sub.Addr():
				r.bad(KeyLocalIPv4s, "%s is the subnet's network address", a)
			case a == sub.Addr().Next():
				r.bad(KeyLocalIPv4s, "%s is the subnet's router (its base address + 1)", a)
			}
		}
		r.prefixesBesides(KeyIPv4Prefix, e.IPv4Prefixes, []netip.Prefix{sub})
	}
	if subs := e.SubnetIPv6; len(subs) > 0 {
		for _, a := range e.IPv6s {
			if !slices.ContainsFunc(subs, func(s netip.Prefix) bool { return s.Contains(a) }) {
				r.bad(KeyIPv6s, "%s is outside %s %s", a, KeySubnetIPv6CIDR, prefixesText(subs))
			}
		}
		r.prefixesBesides(KeyIPv6Prefix, e.IPv6Prefixes, subs)
	}
}

// prefixesBesides rejects a delegated prefix that holds a whole subnet of the ENI (0.0.0.0/0,
// found by FuzzENIValue, or the subnet itself): its source rule would send every address of the
// subnet, other ENIs' included, through this ENI's table. EC2 delegates /28s and /80s.
func (r *eniReader) prefixesBesides(key string, prefixes, subnets []netip.Prefix) {
	for _, p := range prefixes {
		for _, sub := range subnets {
			if p.Bits() <= sub.Bits() && p.Contains(sub.Addr()) {
				r.bad(key, "%s contains the whole subnet %s: its source rule would take the subnet's traffic", p, sub)
				break
			}
		}
	}
}

func prefixesText(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// maxReported bounds how many bad values one ENI's reason lists: a value of thousands of bad
// lines must not turn into a reason (and a log line) of thousands of complaints.
const maxReported = 5

// eniReader parses the keys of one MAC directory and collects what is malformed, so one pass
// reports every bad value of the ENI instead of only the first (up to maxReported, then a count).
type eniReader struct {
	mac     string
	keys    map[string]string
	invalid []string
	more    int
}

func (r *eniReader) bad(key, format string, args ...any) {
	if len(r.invalid) == maxReported {
		r.more++
		return
	}
	r.invalid = append(r.invalid, key+": "+fmt.Sprintf(format, args...))
}

// lines splits a multi-line value, one entry per line, in IMDS order (local-ipv4s: the first is
// the ENI's primary address, so the order must survive). Blank lines and surrounding white space
// (including a trailing newline or \r) are not values.
func (r *eniReader) lines(key string) []string {
	var out []string
	for line := range strings.SplitSeq(r.keys[key], "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func (r *eniReader) has(key string) bool { return strings.TrimSpace(r.keys[key]) != "" }

func (r *eniReader) single(key string) (string, bool) {
	l := r.lines(key)
	if len(l) > 1 {
		r.bad(key, "has %d lines, want one value", len(l))
		return "", false
	}
	if len(l) == 0 {
		return "", false
	}
	return l[0], true
}

// number reads a decimal in 0..hi; absent reads as 0 (the caller decides whether absent is fine).
func (r *eniReader) number(key string, hi int) int {
	s, ok := r.single(key)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		r.bad(key, "%s is not a number", QuoteValue(s))
	case n < 0 || n > hi:
		r.bad(key, "%s is out of range 0..%d", QuoteValue(s), hi)
	default:
		return n
	}
	return 0
}

// addrs parses one address per line. netip.Addr compares by value, so an uncompressed IPv6
// address from IMDS equals its compressed form and never churns (amazon-ec2-net-utils #68).
func (r *eniReader) addrs(key string, fam Family) []netip.Addr {
	var out []netip.Addr
	for _, s := range r.lines(key) {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			r.bad(key, "%s is not an IP address", QuoteValue(s))
		case a.Zone() != "" || !isFamily(a, fam):
			r.bad(key, "%s is not an %s address", QuoteValue(s), familyName(fam))
		case !slices.Contains(out, a): // a duplicate would only duplicate rules
			out = append(out, a)
		}
	}
	return out
}

// prefixes parses one CIDR block per line. It must be the network itself: "10.0.1.5/24" is an
// address with a mask, and taking it as a subnet or a delegated prefix would route the wrong
// range. netip prints the canonical compressed form, so "2600:1f14:abc:de00:0:0:0:0/80" and
// "2600:1f14:abc:de00::/80" are the same value.
func (r *eniReader) prefixes(key string, fam Family) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range r.lines(key) {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			r.bad(key, "%s is not a CIDR block", QuoteValue(s))
		case !isFamily(p.Addr(), fam):
			r.bad(key, "%s is not an %s CIDR block", QuoteValue(s), familyName(fam))
		case p != p.Masked():
			r.bad(key, "%s is not a network address (want %q)", QuoteValue(s), p.Masked().String())
		case !slices.Contains(out, p):
			out = append(out, p)
		}
	}
	return out
}

func isFamily(a netip.Addr, fam Family) bool {
	if fam == IPv4 {
		return a.Is4()
	}
	return a.Is6() && !a.Is4In6()
}

func familyName(fam Family) string {
	if fam == IPv4 {
		return "IPv4"
	}
	return "IPv6"
}

// normalMAC returns a 48-bit MAC in the lower-case colon form the kernel prints, so IMDS MACs
// compare equal to link MACs. A listing line's trailing "/" is tolerated.
func normalMAC(s string) (string, bool) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/")
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", false
	}
	return hw.String(), true
}

// validENIID accepts "eni-" followed by lower-case hex (8 digits for old ids, 17 for new ones;
// the length is not checked so a future format does not make every ENI invalid).
func validENIID(id string) bool {
	hex, ok := strings.CutPrefix(id, "eni-")
	if !ok || hex == "" {
		return false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxQuoted is how much of a value errors and logs quote: enough to recognise it, while a
// garbage value (up to the IMDS client's 64 KiB body cap) is not copied into every log line.
const maxQuoted = 64

// QuoteValue quotes a value from IMDS (or a configuration file) for an error message, cut after
// maxQuoted bytes with its full length appended: "xxxx…"…(10000 bytes).
func QuoteValue(s string) string {
	head, rest := cut(s)
	return strconv.Quote(head) + rest
}

// truncate shortens a value used as an identifier (a listed MAC directory that is not a MAC).
func truncate(s string) string {
	head, rest := cut(s)
	return head + rest
}

func cut(s string) (head, rest string) {
	if len(s) <= maxQuoted {
		return s, ""
	}
	return s[:maxQuoted], fmt.Sprintf("…(%d bytes)", len(s))
}
