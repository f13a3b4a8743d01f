package networkd

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/plantest"
)

// An ENI with IPv6 keeps its source rules and secondary addresses out of its files (issue #12:
// every reload that changes them restarts DHCPv6 on the link): the agent puts them into the
// kernel and lists the addresses in a record networkd does not read. A change of addresses then
// writes no networkd file and reloads nothing; the record follows, and a removed address goes
// only if the record says it is ours.
func TestENIWithIPv6KeepsRulesAndAddressesInTheKernelWithoutReloads(t *testing.T) {
	f := newFixture(t)
	dual := plantest.SecondaryDualStack()
	plan := core.Plan{Interfaces: []core.InterfacePlan{dual}}
	links := []core.Link{ens6}
	rep := plantest.Apply(t, f.backend, plan, links)
	if got := keys(tree(t, f.dir)); !slices.Equal(got, []string{"70-ens6.network", "70-ens6.network.d/ec2-net-utils.kernel", "70-ens6.network.d/eni.conf"}) {
		t.Errorf("files: %v, want the .network file, eni.conf and the kernel record", got)
	}
	if f.reloader.calls != 1 {
		t.Errorf("reloads = %d, want 1", f.reloader.calls)
	}
	if o := outcomes(rep)["ens6"]; o != core.Deferred {
		t.Errorf("first apply: ens6 %s, want deferred (networkd reconfigures the link after the reload)", o)
	}
	if !slices.Equal(dual.Rules, f.kernel.rules) {
		t.Errorf("rules in the kernel: %v, want %v", f.kernel.rules, dual.Rules)
	}
	if !slices.Equal(dual.Addresses, f.kernel.addrs["ens6"]) {
		t.Errorf("addresses in the kernel: %v, want %v", f.kernel.addrs["ens6"], dual.Addresses)
	}

	// The next pass has nothing to write: configured.
	rep = plantest.Apply(t, f.backend, plan, links)
	if o := outcomes(rep)["ens6"]; o != core.Configured || rep.Changed() || f.reloader.calls != 1 {
		t.Errorf("second apply: ens6 %s, changed %v, reloads %d; want configured, nothing, 1", o, rep.Changed(), f.reloader.calls)
	}

	// An address and its rule go, another comes; a foreign rule and a DHCPv6 address stay.
	foreign := core.Rule{Family: core.IPv6, From: netip.MustParsePrefix("2600:1f14:abc:de00:9::/80"), Table: 10001, Priority: 1536}
	f.kernel.rules = append(f.kernel.rules, foreign)
	dhcp6 := netip.MustParsePrefix("2600:1f14:abc:de00::5/128")
	f.kernel.addrs["ens6"] = append(f.kernel.addrs["ens6"], dhcp6)
	next := dual
	next.Addresses = []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32"), netip.MustParsePrefix("2600:1f14:abc:de00::9/128")}
	next.Rules = slices.DeleteFunc(slices.Clone(dual.Rules), func(r core.Rule) bool { return r.From == netip.MustParsePrefix("10.0.1.52/32") })
	next.Rules = append(next.Rules, core.Rule{Family: core.IPv6, From: netip.MustParsePrefix("2600:1f14:abc:de00::9/128"), Table: 10001, Priority: 10001})
	before := tree(t, f.dir)
	rep = plantest.Apply(t, f.backend, core.Plan{Interfaces: []core.InterfacePlan{next}}, links)
	if f.reloader.calls != 1 {
		t.Errorf("an address change reloaded networkd (%d reloads)", f.reloader.calls)
	}
	if o := outcomes(rep)["ens6"]; o != core.Configured {
		t.Errorf("address change: ens6 %s, want configured", o)
	}
	after := tree(t, f.dir)
	for name, content := range before {
		if name != "70-ens6.network.d/ec2-net-utils.kernel" && after[name] != content {
			t.Errorf("%s changed with the addresses", name)
		}
	}
	wantAddrs := []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32"), dhcp6, netip.MustParsePrefix("2600:1f14:abc:de00::9/128")}
	if !slices.Equal(wantAddrs, f.kernel.addrs["ens6"]) {
		t.Errorf("addresses in the kernel: %v, want %v", f.kernel.addrs["ens6"], wantAddrs)
	}
	if !slices.Contains(f.kernel.rules, foreign) {
		t.Error("the foreign rule was removed")
	}
	if slices.ContainsFunc(f.kernel.rules, func(r core.Rule) bool { return r.From == netip.MustParsePrefix("10.0.1.52/32") }) {
		t.Error("the rule of the unassigned address is still there")
	}
	owned, err := readRecord(filepath.Join(f.dir, "70-ens6.network.d", KernelRecord))
	if err != nil || !slices.Equal(owned, next.Addresses) {
		t.Errorf("record lists %v (%v), want %v", owned, err, next.Addresses)
	}
	carriers, err := f.backend.Carriers(t.Context(), next)
	if err != nil || !slices.Contains(carriers, core.Carrier{Name: filepath.Join(f.dir, "70-ens6.network.d", KernelRecord), Ours: true}) {
		t.Errorf("carriers %v (%v) do not name the kernel record", carriers, err)
	}

	// The IPv6 addresses unassigned: no IPv6 any more, the files carry everything again; the
	// IPv6 rule and address the agent added go, the DHCPv6 address stays.
	v4 := next
	v4.IPv6 = false
	v4.Addresses = []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32")}
	v4.Rules = slices.DeleteFunc(slices.Clone(next.Rules), func(r core.Rule) bool { return r.Family == core.IPv6 })
	v4.Routes = slices.DeleteFunc(slices.Clone(next.Routes), func(r core.Route) bool { return r.Destination.Addr().Is6() })
	rep = plantest.Apply(t, f.backend, core.Plan{Interfaces: []core.InterfacePlan{v4}}, links)
	if o := outcomes(rep)["ens6"]; o != core.Configured {
		t.Errorf("IPv6 gone: ens6 %s, want configured", o)
	}
	if got := keys(tree(t, f.dir)); !slices.Equal(got, []string{"70-ens6.network", "70-ens6.network.d/ec2net_alias.conf",
		"70-ens6.network.d/ec2net_policy_4.conf", "70-ens6.network.d/eni.conf"}) {
		t.Errorf("files without IPv6: %v", got)
	}
	if slices.ContainsFunc(f.kernel.rules, func(r core.Rule) bool { return r.Family == core.IPv6 && r.Priority == 10001 }) {
		t.Errorf("IPv6 rules of ours left: %v", f.kernel.rules)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.1.51/32"), dhcp6}; !slices.Equal(f.kernel.addrs["ens6"], want) {
		t.Errorf("addresses without IPv6: %v, want %v", f.kernel.addrs["ens6"], want)
	}

	// Detach: every file goes, the record with them, without a reload.
	plantest.Apply(t, f.backend, core.Plan{}, nil)
	if got := keys(tree(t, f.dir)); len(got) != 0 || f.reloader.calls != 2 {
		t.Errorf("after detach: files %v, reloads %d; want none, 2 (the first apply, IPv6 gone)", got, f.reloader.calls)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "70-ens6.network.d")); err == nil {
		t.Error("the drop-in directory is left")
	}
}
