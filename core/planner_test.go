package core_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/golden"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

var update = flag.Bool("update", false, "rewrite golden files")

// planScenario runs a scenario file through validation and the planner, as the daemon would.
func planScenario(t *testing.T, path string) core.Plan {
	t.Helper()
	sc, inst := loadScenario(t, path)
	return core.NewPlan(inst, sc.CoreLinks(), sc.Options.Apply(core.DefaultPlanOptions()))
}

// loadScenario reads a scenario and parses its IMDS tree.
func loadScenario(t *testing.T, path string) (*scenario.Scenario, core.Instance) {
	t.Helper()
	sc, err := scenario.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := core.ParseInstance(sc.Raw())
	if err != nil {
		t.Fatalf("ParseInstance: %v", err)
	}
	return sc, inst
}

// TestPlanGolden renders every scenario's plan as JSON (the `plan --json` contract) and as text
// (what `plan` shows a person) and compares both with testdata/plan/<scenario>.{json,txt}.
func TestPlanGolden(t *testing.T) {
	files, err := filepath.Glob("../testdata/scenarios/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if strings.HasPrefix(name, "imds-") {
			continue // IMDS client fixtures, not planner scenarios
		}
		t.Run(name, func(t *testing.T) {
			plan := planScenario(t, f)
			js, err := json.MarshalIndent(plan, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			var txt bytes.Buffer
			if err := core.WriteText(&txt, plan); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "plan", name+".json"), append(js, '\n'), *update)
			golden.Check(t, filepath.Join("testdata", "plan", name+".txt"), txt.Bytes(), *update)
		})
	}
}

func findIface(t *testing.T, p core.Plan, name string) core.InterfacePlan {
	t.Helper()
	for _, i := range p.Interfaces {
		if i.Name == name {
			return i
		}
	}
	t.Fatalf("interface %s not planned; plan: %+v", name, p)
	return core.InterfacePlan{}
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func ruleFroms(rules []core.Rule) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(rules))
	for _, r := range rules {
		out = append(out, r.From)
	}
	return out
}

// The golden files pin the whole plan; these assertions say in words what each scenario is for,
// so a regenerated golden file cannot quietly bless a regression.
func TestPlanScenarios(t *testing.T) {
	t.Run("primary ENI has no source rules, secondary addresses as /32", func(t *testing.T) {
		p := planScenario(t, "../testdata/scenarios/one-eni.json")
		ens5 := findIface(t, p, "ens5")
		if !ens5.Primary || len(ens5.Rules) != 0 {
			t.Errorf("primary ENI: primary=%v rules=%v, want primary and no rules", ens5.Primary, ens5.Rules)
		}
		if diff := cmp.Diff(prefixes("10.99.0.20/32"), ens5.Addresses, cmpPrefix); diff != "" {
			t.Errorf("addresses (-want +got):\n%s", diff)
		}
		if ens5.Table != 10000 || ens5.Metric != 512 {
			t.Errorf("table/metric = %d/%d, want 10000/512", ens5.Table, ens5.Metric)
		}
	})
	t.Run("secondary address sorting before the primary does not displace it", func(t *testing.T) {
		ens6 := findIface(t, planScenario(t, "../testdata/scenarios/primary-and-secondary.json"), "ens6")
		if ens6.PrimaryIPv4 != netip.MustParseAddr("10.99.1.50") {
			t.Errorf("primary IPv4 = %s, want 10.99.1.50 (line 1 of local-ipv4s)", ens6.PrimaryIPv4)
		}
		if diff := cmp.Diff(prefixes("10.99.1.5/32", "10.99.1.200/32"), ens6.Addresses, cmpPrefix); diff != "" {
			t.Errorf("secondary addresses (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(prefixes("10.99.1.50/32", "10.99.1.5/32", "10.99.1.200/32"), ruleFroms(ens6.Rules), cmpPrefix); diff != "" {
			t.Errorf("rules must follow IMDS order (-want +got):\n%s", diff)
		}
		if ens6.Table != 10001 || ens6.Priority != 10001 || ens6.Metric != 513 {
			t.Errorf("table/priority/metric = %d/%d/%d, want 10001/10001/513", ens6.Table, ens6.Priority, ens6.Metric)
		}
		if len(ens6.Routes) != 2 || ens6.Routes[0].Gateway != netip.MustParseAddr("10.99.1.1") {
			t.Errorf("routes = %+v, want default via 10.99.1.1 and the subnet route", ens6.Routes)
		}
	})
	t.Run("IPv6-only subnet gets no IPv4 state", func(t *testing.T) {
		ens7 := findIface(t, planScenario(t, "../testdata/scenarios/ipv6-only.json"), "ens7")
		if ens7.IPv4 || !ens7.IPv6 {
			t.Fatalf("ipv4=%v ipv6=%v, want IPv6 only", ens7.IPv4, ens7.IPv6)
		}
		for _, r := range ens7.Rules {
			if r.Family != core.IPv6 {
				t.Errorf("IPv4 rule %v in an IPv6-only subnet", r)
			}
		}
		for _, r := range ens7.Routes {
			if r.Destination.Addr().Is4() {
				t.Errorf("IPv4 route %v in an IPv6-only subnet", r)
			}
		}
	})
	t.Run("further ipv6s are /128 addresses, the first is DHCPv6's", func(t *testing.T) {
		ens6 := findIface(t, planScenario(t, "../testdata/scenarios/dual-stack.json"), "ens6")
		want := prefixes("10.0.1.51/32", "10.0.1.52/32", "2600:1f14:abc:de01::51/128")
		if diff := cmp.Diff(want, ens6.Addresses, cmpPrefix); diff != "" {
			t.Errorf("addresses (-want +got):\n%s", diff)
		}
		sc, inst := loadScenario(t, "../testdata/scenarios/dual-stack.json")
		opts := core.DefaultPlanOptions()
		opts.NoSecondaryAddresses = true
		ens6 = findIface(t, core.NewPlan(inst, sc.CoreLinks(), opts), "ens6")
		if len(ens6.Addresses) != 0 {
			t.Errorf("secondary_addresses = false: addresses %v assigned", ens6.Addresses)
		}
	})
	t.Run("uncompressed IPv6 prefix is planned in canonical form", func(t *testing.T) {
		ens6 := findIface(t, planScenario(t, "../testdata/scenarios/delegated-prefixes.json"), "ens6")
		want := prefixes("10.0.1.10/32", "10.0.1.64/28", "10.0.1.128/28", "2600:1f14:abc:de01::10/128",
			"2600:1f14:abc:de01:1::/80", "2600:1f14:abc:de01:2::/80")
		if diff := cmp.Diff(want, ruleFroms(ens6.Rules), cmpPrefix); diff != "" {
			t.Errorf("rules (-want +got):\n%s", diff)
		}
		if len(ens6.Addresses) != 0 {
			t.Errorf("prefix addresses assigned without assign_prefix_addresses: %v", ens6.Addresses)
		}
	})
	t.Run("assign_prefix_addresses assigns every address of each /28", func(t *testing.T) {
		ens6 := findIface(t, planScenario(t, "../testdata/scenarios/delegated-prefixes-assigned.json"), "ens6")
		if len(ens6.Addresses) != 32 {
			t.Errorf("got %d addresses, want 32 (two /28s)", len(ens6.Addresses))
		}
	})
	t.Run("device-number 0 on two cards gives distinct tables", func(t *testing.T) {
		p := planScenario(t, "../testdata/scenarios/multi-card.json")
		a, b := findIface(t, p, "ens5"), findIface(t, p, "ens6")
		if a.Table != 10000 || b.Table != 10100 || b.Metric != 612 {
			t.Errorf("tables %d/%d metric %d, want 10000/10100 and 612", a.Table, b.Table, b.Metric)
		}
		if b.Primary || len(b.Rules) == 0 {
			t.Errorf("card-1 ENI must be a secondary with rules: primary=%v rules=%v", b.Primary, b.Rules)
		}
		if got := b.Altnames[len(b.Altnames)-1]; got != "device-number-0.1" {
			t.Errorf("altname %q, want device-number-0.1", got)
		}
	})
	t.Run("not propagated ENIs are pending, not planned", func(t *testing.T) {
		p := planScenario(t, "../testdata/scenarios/not-propagated.json")
		if len(p.Interfaces) != 1 || p.Interfaces[0].Name != "ens5" {
			t.Errorf("planned %v, want only ens5", names(p))
		}
		if len(p.Pending) != 2 {
			t.Errorf("pending = %+v, want ens6 and ens7", p.Pending)
		}
	})
	t.Run("non-ENI links are never planned", func(t *testing.T) {
		p := planScenario(t, "../testdata/scenarios/non-eni-links.json")
		if got := names(p); !cmp.Equal(got, []string{"ens5"}) {
			t.Errorf("planned %v, want [ens5]", got)
		}
		if len(p.Pending) != 1 || p.Pending[0].MAC != "02:00:00:00:08:08" {
			t.Errorf("pending = %+v, want the unattached ENI 02:00:00:00:08:08", p.Pending)
		}
	})
	t.Run("excluded interfaces are left alone", func(t *testing.T) {
		p := planScenario(t, "../testdata/scenarios/excluded.json")
		if got := names(p); !cmp.Equal(got, []string{"ens5"}) {
			t.Errorf("planned %v, want [ens5]", got)
		}
		if len(p.Ignored) != 2 {
			t.Errorf("ignored = %+v, want ens6 and ens7", p.Ignored)
		}
	})
	t.Run("exclude takes globs for names, MACs exactly", func(t *testing.T) {
		sc, inst := loadScenario(t, "../testdata/scenarios/excluded.json")
		opts := core.DefaultPlanOptions()
		opts.Exclude = []string{"ens[67]", "02:00:00:00:05:0*"}
		p := core.NewPlan(inst, sc.CoreLinks(), opts)
		if got := names(p); !cmp.Equal(got, []string{"ens5"}) {
			t.Errorf("planned %v, want [ens5]: a MAC entry is not a pattern", got)
		}
		if len(p.Ignored) != 2 {
			t.Errorf("ignored = %+v, want ens6 and ens7", p.Ignored)
		}
	})
	t.Run("a malformed value fails only its ENI", func(t *testing.T) {
		p := planScenario(t, "../testdata/scenarios/invalid-value.json")
		if got := names(p); !cmp.Equal(got, []string{"ens5"}) {
			t.Errorf("planned %v, want [ens5]", got)
		}
		if len(p.Pending) != 1 || !strings.Contains(p.Pending[0].Reason, "10.0.1.300") ||
			!strings.Contains(p.Pending[0].Reason, "local-ipv4s") {
			t.Errorf("pending = %+v, want a reason naming local-ipv4s and 10.0.1.300", p.Pending)
		}
	})
	t.Run("primary rules and main default route options", func(t *testing.T) {
		p := planScenario(t, "../testdata/scenarios/primary-rules-no-main-default.json")
		ens5, ens6 := findIface(t, p, "ens5"), findIface(t, p, "ens6")
		if len(ens5.Rules) != 2 || !ens5.MainDefaultRoute {
			t.Errorf("primary: rules=%v main=%v, want 2 rules and the main default route", ens5.Rules, ens5.MainDefaultRoute)
		}
		if ens6.MainDefaultRoute {
			t.Error("secondary has the main default route with main_default_route = false")
		}
	})
}

// TestPlanIsDeterministic feeds links and ENIs in shuffled orders and wants byte-identical plans.
func TestPlanIsDeterministic(t *testing.T) {
	sc, inst := loadScenario(t, "../testdata/scenarios/non-eni-links.json")
	links := sc.CoreLinks()
	first, _ := json.Marshal(core.NewPlan(inst, links, core.DefaultPlanOptions()))
	for i := range links {
		rotated := append(append([]core.Link{}, links[i:]...), links[:i]...)
		got, _ := json.Marshal(core.NewPlan(inst, rotated, core.DefaultPlanOptions()))
		if !bytes.Equal(first, got) {
			t.Fatalf("plan depends on link order:\n%s\n%s", first, got)
		}
	}
}

func names(p core.Plan) []string {
	var out []string
	for _, i := range p.Interfaces {
		out = append(out, i.Name)
	}
	return out
}

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
