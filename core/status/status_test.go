package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/golden"
)

var update = flag.Bool("update", false, "rewrite golden files")

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// plan: the primary ENI (no rules) and a secondary with two addresses, a delegated prefix, and
// IPv4 and IPv6 routes in its table; an ENI pending and one left alone.
func plan() core.Plan {
	const t1 = 10001
	return core.Plan{
		Interfaces: []core.InterfacePlan{
			{Name: "ens5", Index: 2, MAC: "0a:00:00:00:00:01", InterfaceID: "eni-0primary", Primary: true,
				Table: 10000, Priority: 10000, PrimaryIPv4: netip.MustParseAddr("10.0.0.10"),
				Routes:   []core.Route{{Table: 10000, Destination: pfx("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.1")}},
				Altnames: []string{"eni-0primary", "device-number-0.0"}},
			{Name: "ens6", Index: 3, MAC: "0a:00:00:00:00:02", InterfaceID: "eni-0second", DeviceNumber: 1,
				Table: t1, Priority: t1, PrimaryIPv4: netip.MustParseAddr("10.0.1.50"),
				Rules: []core.Rule{
					{Family: core.IPv4, From: pfx("10.0.1.50/32"), Table: t1, Priority: t1},
					{Family: core.IPv4, From: pfx("10.0.1.51/32"), Table: t1, Priority: t1},
					{Family: core.IPv4, From: pfx("10.0.1.64/28"), Table: t1, Priority: t1},
					{Family: core.IPv6, From: pfx("2600:1f14::50/128"), Table: t1, Priority: t1},
				},
				Addresses: []netip.Prefix{pfx("10.0.1.51/32")},
				Routes: []core.Route{
					{Table: t1, Destination: pfx("10.0.1.0/24")},
					{Table: t1, Destination: pfx("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.1.1")},
					{Table: t1, Destination: pfx("::/0"), GatewayFromRA: true},
				},
				Altnames: []string{"eni-0second", "device-number-1.0"}},
		},
		Pending: []core.Pending{{MAC: "0a:00:00:00:00:03", Reason: "no local link with this MAC yet"}},
		Ignored: []core.Ignored{{Name: "ens8", MAC: "0a:00:00:00:00:04", Reason: "excluded by [interfaces] exclude"}},
	}
}

// healthy is what the kernel has once the agent configured plan().
func healthy() Observed {
	p := plan()
	obs := Observed{Routes: map[int][]core.Route{}, Addresses: map[int][]netip.Prefix{}, Altnames: map[int][]string{}}
	for _, ifc := range p.Interfaces {
		obs.Rules = append(obs.Rules, ifc.Rules...)
		for _, r := range ifc.Routes {
			if r.GatewayFromRA {
				r.GatewayFromRA, r.Gateway = false, netip.MustParseAddr("fe80::1")
			}
			obs.Routes[ifc.Table] = append(obs.Routes[ifc.Table], r)
		}
		obs.Addresses[ifc.Index] = append([]netip.Prefix{netip.PrefixFrom(ifc.PrimaryIPv4, 24), pfx("fe80::1:2/64")}, ifc.Addresses...)
		obs.Altnames[ifc.Index] = ifc.Altnames
	}
	return obs
}

func TestConfiguredHostIsOK(t *testing.T) {
	rep := Compare(plan(), healthy())
	if !rep.OK {
		t.Fatalf("want ok:\n%s", text(t, rep))
	}
	for _, e := range rep.ENIs {
		for _, it := range e.Items {
			if it.State != OK {
				t.Errorf("%s: %s %s is %s", e.Name, it.Kind, it.What, it.State)
			}
		}
	}
}

func TestDriftedHost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		drift  func(*Observed)
		ok     bool
		eni    string
		item   string
		state  State
		stale  int
		foreig int
	}{
		{name: "a rule deleted", drift: func(o *Observed) { o.Rules = o.Rules[1:] },
			eni: "ens6", item: "10001: from 10.0.1.50 lookup 10001", state: Missing},
		{name: "a route of the ENI table deleted", drift: func(o *Observed) { o.Routes[10001] = o.Routes[10001][1:] },
			eni: "ens6", item: "10.0.1.0/24 dev ens6 scope link table 10001", state: Missing},
		{name: "a secondary address deleted", drift: func(o *Observed) { o.Addresses[3] = o.Addresses[3][:2] },
			eni: "ens6", item: "10.0.1.51/32", state: Missing},
		{name: "an altname missing", drift: func(o *Observed) { o.Altnames[2] = []string{"eni-0primary"} },
			eni: "ens5", item: "device-number-0.0", state: Missing},
		{name: "an address not planned is unexpected, not a failure", ok: true,
			drift: func(o *Observed) { o.Addresses[3] = append(o.Addresses[3], pfx("10.0.1.99/32")) },
			eni:   "ens6", item: "10.0.1.99/32", state: Unexpected},
		{name: "a rule of the ENI's table not planned is unexpected", ok: true,
			drift: func(o *Observed) {
				o.Rules = append(o.Rules, core.Rule{Family: core.IPv4, From: pfx("10.0.1.77/32"), Table: 10001, Priority: 10001})
			},
			eni: "ens6", item: "10001: from 10.0.1.77 lookup 10001", state: Unexpected},
		{name: "a rule of an ENI that is gone is stale", stale: 1,
			drift: func(o *Observed) {
				o.Rules = append(o.Rules, core.Rule{Family: core.IPv4, From: pfx("10.0.2.5/32"), Table: 10002, Priority: 10002})
			}},
		{name: "someone else's rule in the band is foreign, and fine", ok: true, foreig: 1,
			drift: func(o *Observed) {
				o.Rules = append(o.Rules, core.Rule{Family: core.IPv4, From: pfx("10.0.1.9/32"), Table: 100, Priority: 10050})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := healthy()
			tc.drift(&obs)
			rep := Compare(plan(), obs)
			if rep.OK != tc.ok || len(rep.Stale) != tc.stale || len(rep.Foreign) != tc.foreig {
				t.Errorf("ok %v, %d stale, %d foreign; want %v, %d, %d\n%s", rep.OK, len(rep.Stale), len(rep.Foreign), tc.ok, tc.stale, tc.foreig, text(t, rep))
			}
			if tc.eni == "" {
				return
			}
			for _, e := range rep.ENIs {
				for _, it := range e.Items {
					if e.Name == tc.eni && it.What == tc.item {
						if it.State != tc.state {
							t.Errorf("%s %s: %s, want %s", e.Name, it.What, it.State, tc.state)
						}
						return
					}
				}
			}
			t.Errorf("no item %q on %s:\n%s", tc.item, tc.eni, text(t, rep))
		})
	}
}

func TestSelectKeepsTheNamedENIs(t *testing.T) {
	obs := healthy()
	obs.Rules = obs.Rules[1:] // ens6 is not ok
	rep := Compare(plan(), obs)
	if got := rep.Select([]string{"ens5"}); !got.OK || len(got.ENIs) != 1 || len(got.Pending) != 0 {
		t.Errorf("ens5 alone: ok %v, %d ENIs, %d pending", got.OK, len(got.ENIs), len(got.Pending))
	}
	if got := rep.Select([]string{"0a:00:00:00:00:02", "0a:00:00:00:00:03"}); got.OK || len(got.ENIs) != 1 || len(got.Pending) != 1 {
		t.Errorf("ens6 by MAC and the pending ENI: ok %v, %d ENIs, %d pending", got.OK, len(got.ENIs), len(got.Pending))
	}
}

// The text and JSON a user sees for a drifted host: one rule deleted, a foreign rule in the band;
// ens5 runs the agent's own .network file, ens6 netplan's with the agent's drop-ins.
func TestStatusOutput(t *testing.T) {
	obs := healthy()
	obs.Config = map[string]Config{
		"0a:00:00:00:00:01": {Backend: "networkd", Carriers: []core.Carrier{
			{Name: "/run/systemd/network/70-ens5.network", InUse: true, Ours: true},
			{Name: "/run/systemd/network/70-ens5.network.d/eni.conf", Ours: true},
		}},
		"0a:00:00:00:00:02": {Backend: "networkd", Carriers: []core.Carrier{
			{Name: "/run/systemd/network/10-netplan-ens6.network", InUse: true},
			{Name: "/run/systemd/network/10-netplan-ens6.network.d/eni.conf", Ours: true},
			{Name: "/run/systemd/network/10-netplan-ens6.network.d/ec2net_policy_4.conf", Ours: true},
		}},
	}
	obs.Rules = append(obs.Rules[1:], core.Rule{Family: core.IPv4, From: pfx("10.0.1.9/32"), Table: 100, Priority: 10050})
	rep := Compare(plan(), obs)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "drifted.json"), append(js, '\n'), *update)
	golden.Check(t, filepath.Join("testdata", "drifted.txt"), []byte(text(t, rep)), *update)
}

// describer says what carries ens5's configuration and fails for ens6.
type describer struct{}

func (describer) Name() string { return "networkmanager" }
func (describer) Apply(context.Context, core.Plan, []core.Link) (core.Report, error) {
	return core.Report{}, errors.New("not here")
}
func (describer) Carriers(_ context.Context, p core.InterfacePlan) ([]core.Carrier, error) {
	if p.Name == "ens6" {
		return nil, errors.New("networkmanager: ens6: NetworkManager does not answer")
	}
	return []core.Carrier{{Name: `profile "ec2-net-utils-ens5" uuid 1`, InUse: true, Ours: true}}, nil
}

// status asks the backend per ENI; an ENI it cannot describe shows why, the others what they run.
func TestDescribeAsksTheBackendPerENI(t *testing.T) {
	obs := healthy()
	obs.Config = Describe(context.Background(), plan(), describer{})
	got := text(t, Compare(plan(), obs))
	for _, want := range []string{
		"  config   networkmanager profile \"ec2-net-utils-ens5\" uuid 1 (in use, ours)\n",
		"  config   networkmanager unknown: networkmanager: ens6: NetworkManager does not answer\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no line %q in:\n%s", want, got)
		}
	}
	if got := Describe(context.Background(), plan(), nil); got != nil {
		t.Errorf("without a backend: %v, want nothing", got)
	}
}

func text(t *testing.T, r Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

type fakeKernel struct{ obs Observed }

func (k fakeKernel) Rules(lo, hi int) ([]core.Rule, error) { return k.obs.Rules, nil }
func (k fakeKernel) RoutesInTable(table int) ([]core.Route, error) {
	return k.obs.Routes[table], nil
}
func (k fakeKernel) Addresses(l core.Link) ([]netip.Prefix, error) {
	return k.obs.Addresses[l.Index], nil
}
func (k fakeKernel) Altnames(l core.Link) ([]string, error) { return k.obs.Altnames[l.Index], nil }

func TestObserveReadsEveryPlannedENI(t *testing.T) {
	obs, err := Observe(plan(), fakeKernel{healthy()})
	if err != nil {
		t.Fatal(err)
	}
	if !Compare(plan(), obs).OK {
		t.Fatal("observed state of a configured host is not ok")
	}
}
