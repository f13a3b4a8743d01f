package networkmanager

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

var fuzzPlans = []func() core.InterfacePlan{
	plantest.Primary, plantest.SecondaryDualStack, plantest.IPv4Only, plantest.IPv6Only, plantest.Card1,
}

// fuzzProfile builds a profile from lines a user's routing could hold:
// "a ADDR PREFIX", "r DEST PREFIX TABLE", "u FROM LEN PRIORITY TABLE"; each goes to the family of
// its address. Malformed lines are kept as entries of wrong types, which NM would not send but
// Merge must survive.
func fuzzProfile(method4, method6, lines string) Settings {
	s := Settings{
		"connection": {"id": dbus.MakeVariant("user ens6"), "type": dbus.MakeVariant("802-3-ethernet")},
		"ipv4":       {"method": dbus.MakeVariant(method4)},
		"ipv6":       {"method": dbus.MakeVariant(method6)},
	}
	lists := map[string]map[string][]map[string]dbus.Variant{"ipv4": {}, "ipv6": {}}
	num := func(s string) uint32 { n, _ := strconv.ParseUint(s, 10, 32); return uint32(n) }
	for line := range strings.SplitSeq(lines, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		fam := "ipv4"
		if a, err := netip.ParseAddr(f[1]); err == nil && a.Is6() {
			fam = "ipv6"
		}
		switch {
		case f[0] == "a":
			lists[fam]["address-data"] = append(lists[fam]["address-data"], map[string]dbus.Variant{
				"address": dbus.MakeVariant(f[1]), "prefix": dbus.MakeVariant(num(f[2]))})
		case f[0] == "r" && len(f) >= 4:
			lists[fam]["route-data"] = append(lists[fam]["route-data"], map[string]dbus.Variant{
				"dest": dbus.MakeVariant(f[1]), "prefix": dbus.MakeVariant(num(f[2])), "table": dbus.MakeVariant(num(f[3]))})
		case f[0] == "u" && len(f) >= 5:
			lists[fam]["routing-rules"] = append(lists[fam]["routing-rules"], map[string]dbus.Variant{
				"from": dbus.MakeVariant(f[1]), "from-len": dbus.MakeVariant(uint8(num(f[2]))),
				"priority": dbus.MakeVariant(num(f[3])), "table": dbus.MakeVariant(num(f[4]))})
		default:
			s[fam][f[0]] = dbus.MakeVariant(f[1:]) // a key of a type Merge does not expect
		}
	}
	for fam, keys := range lists {
		for key, l := range keys {
			s[fam][key] = dbus.MakeVariant(l)
		}
	}
	return s
}

// FuzzMerge: merging a plan into a user's profile keeps every entry of the profile and adds every
// entry of the plan (for families that take addresses), changes neither input, and merging again
// changes nothing.
func FuzzMerge(f *testing.F) {
	f.Add(uint8(1), "auto", "auto", "a 10.0.1.51 32\nu 192.0.2.10 32 200 200\nr 192.0.2.0 24 200", true)
	f.Add(uint8(0), "manual", "ignore", "a 10.0.0.9 32\na 2600:1f14::5 128", false)
	f.Add(uint8(3), "disabled", "dhcp", "u 2600:: 64 300 300\naddress-data x y", true)
	f.Add(uint8(4), "link-local", "shared", "", false)
	// The goldens are the profiles Merge meets in practice (ours as rendered, and a user's after a
	// merge): each is seeded against every plan, as a profile left from another ENI's plan.
	for _, g := range goldenProfiles(f) {
		for which := range fuzzPlans {
			f.Add(uint8(which), g.method4, g.method6, g.lines, false)
		}
	}
	// The last argument (whether NM had seen an RA) no longer changes what is merged: the RA
	// route is not NM's (see Render). It stays so the corpus keeps its shape.
	f.Fuzz(func(t *testing.T, which uint8, method4, method6, lines string, _ bool) {
		p := fuzzPlans[int(which)%len(fuzzPlans)]()
		profile := fuzzProfile(method4, method6, lines)
		applied := nmCopy(profile)
		applied["ipv4"]["address-data"] = dbus.MakeVariant([]map[string]dbus.Variant{
			{"address": dbus.MakeVariant("10.0.1.99"), "prefix": dbus.MakeVariant(uint32(32))}}) // an earlier plan's
		profileBefore, appliedBefore := canon(dbus.MakeVariant(profile)), canon(dbus.MakeVariant(applied))

		merged, skipped := Merge(applied, profile, p)
		if canon(dbus.MakeVariant(profile)) != profileBefore || canon(dbus.MakeVariant(applied)) != appliedBefore {
			t.Fatal("Merge changed its inputs")
		}
		again, _ := Merge(merged, profile, p)
		if d := routingDiff(again, merged); d != "" {
			t.Fatalf("merging twice changed %s", d)
		}
		for _, fam := range []core.Family{core.IPv4, core.IPv6} {
			name := fam.String()
			method := stringValue(applied, name, "method")
			if method != "auto" && method != "manual" && method != "dhcp" {
				continue
			}
			for key, ours := range map[string][]map[string]dbus.Variant{
				"address-data": addressData(p, fam), "route-data": routeData(p, fam), "routing-rules": ruleData(p, fam),
			} {
				have := map[string]bool{}
				for _, m := range listValue(merged, name, key) {
					have[canon(dbus.MakeVariant(m))] = true
				}
				for _, m := range append(listValue(profile, name, key), ours...) {
					if !have[canon(dbus.MakeVariant(m))] {
						t.Fatalf("%s.%s lost %v (skipped %v)", name, key, m, skipped)
					}
				}
			}
		}
	})
}

// goldenProfile is a golden profile in FuzzMerge's terms: its methods, and its addresses, routes
// and rules as fuzzProfile lines.
type goldenProfile struct{ method4, method6, lines string }

// goldenProfiles reads testdata/*.golden.json (settingsJSON's format). A golden that cannot be
// read fails the fuzz target: a corpus silently without them would test less than it claims.
func goldenProfiles(f *testing.F) []goldenProfile {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.golden.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no golden profiles in testdata: %v", err)
	}
	type typedValue struct {
		Signature string          `json:"signature"`
		Value     json.RawMessage `json:"value"`
	}
	// text is a value as fuzzProfile's fields spell it: a string unquoted, a number as written.
	text := func(v typedValue) string {
		var s string
		if json.Unmarshal(v.Value, &s) == nil {
			return s
		}
		return string(v.Value)
	}
	var out []goldenProfile
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatalf("read golden: %v", err)
		}
		var settings map[string]map[string]typedValue
		if err := json.Unmarshal(b, &settings); err != nil {
			f.Fatalf("golden %s: %v", path, err)
		}
		var g goldenProfile
		var lines []string
		for _, fam := range []string{"ipv4", "ipv6"} {
			keys := settings[fam]
			method := text(keys["method"])
			if fam == "ipv4" {
				g.method4 = method
			} else {
				g.method6 = method
			}
			list := func(key string) []map[string]typedValue {
				var l []map[string]typedValue
				if v, ok := keys[key]; ok {
					if err := json.Unmarshal(v.Value, &l); err != nil {
						f.Fatalf("golden %s: %s.%s: %v", path, fam, key, err)
					}
				}
				return l
			}
			for _, a := range list("address-data") {
				lines = append(lines, strings.Join([]string{"a", text(a["address"]), text(a["prefix"])}, " "))
			}
			for _, r := range list("route-data") {
				lines = append(lines, strings.Join([]string{"r", text(r["dest"]), text(r["prefix"]), text(r["table"])}, " "))
			}
			for _, u := range list("routing-rules") {
				lines = append(lines, strings.Join([]string{"u", text(u["from"]), text(u["from-len"]), text(u["priority"]), text(u["table"])}, " "))
			}
		}
		if len(lines) == 0 {
			f.Fatalf("golden %s: no address, route or rule read from it", path)
		}
		g.lines = strings.Join(lines, "\n")
		out = append(out, g)
	}
	return out
}
