package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// kernelState is what an ENI configuration leaves in the kernel and what the backends must agree
// on. Left out on purpose: the protocol of routes and rules (networkd and NM mark them
// differently), route metrics (the ENI tables hold one route per destination, so the metric
// decides nothing there), address lifetimes and flags, IPv6 link-local addresses (the kernel's
// or the manager's, by design of each), and the main table (each manager adds its own DHCP
// extras there, e.g. networkd's host route to the gateway; its contents are checked per backend
// by the scenarios).
//
// IPv6 is compared too: the rules of both families, the ENI tables' IPv6 routes (the RA router's
// link-local address, which the lab's VPC router picks anew for every lab, written as
// "fe80::router") and the DHCPv6 and secondary IPv6 addresses.
type kernelState struct {
	Rules     []string            // "priority: from X lookup T"
	Tables    map[int][]string    // ENI table → "dst via gw dev"
	Addresses map[string][]string // link → IPv4 and global IPv6 addresses with prefix length
}

func (e *env) kernelState(tables []int, links []string) kernelState {
	e.t.Helper()
	st := kernelState{Tables: map[int][]string{}, Addresses: map[string][]string{}}
	for _, r := range e.rules() {
		if r.Priority >= 10000 && r.Priority < 32766 {
			st.Rules = append(st.Rules, r.String())
		}
	}
	slices.Sort(st.Rules)
	for _, tbl := range tables {
		var routes []string
		for _, r := range e.routes(tbl) {
			if gw, rest, ok := strings.Cut(r, " via fe80:"); ok {
				_, dev, _ := strings.Cut(rest, " dev ")
				r = gw + " via fe80::router dev " + dev
			}
			routes = append(routes, r)
		}
		st.Tables[tbl] = routes
	}
	for _, name := range links {
		l, err := e.nl.LinkByName(name)
		must(e.t, err)
		as, err := e.nl.AddrList(l, netlink.FAMILY_ALL)
		must(e.t, err)
		var out []string
		for _, a := range as {
			if a.IP.IsLinkLocalUnicast() {
				continue
			}
			out = append(out, a.IPNet.String())
		}
		slices.Sort(out)
		st.Addresses[name] = out
	}
	return st
}

// TestEveryBackendLeavesTheKernelInTheSameState runs one IMDS scenario — a dual-stack primary ENI
// with a secondary address, a dual-stack secondary ENI with two addresses of each family, a
// delegated IPv4 prefix whose addresses are assigned and a delegated IPv6 prefix, and a third
// dual-stack ENI hot-attached — against every backend's real manager and compares the rules,
// ENI-table routes and addresses of both families they leave in the kernel.
func TestEveryBackendLeavesTheKernelInTheSameState(t *testing.T) {
	states := map[string]kernelState{}
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			third := thirdENI()
			third.IPv6s = []string{"fd00:99:0:2::10"}
			e := newEnv(t, bc, envOptions{
				enis:       []lab.ENISpec{dualStackPrimary(), dualStackSecond(), third},
				interfaces: "assign_prefix_addresses = true",
			})
			must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
				s.Interfaces["02:00:00:00:06:06"][core.KeyIPv4Prefix] = scenario.Value{"10.99.1.64/28"}
			}))
			e.startAgent()
			must(t, e.l.Attach("ens7"))
			e.waitRule(ens7Rule, true)
			e.waitRule(rule{Priority: 10001, Table: 10001, From: "10.99.1.64/28"}, true)
			e.waitForAddress("ens6", "10.99.1.79/32")
			e.waitForAddress("ens5", "10.99.0.20/32")
			e.waitFor("ens7's table routes", func() (bool, error) {
				return slices.Contains(e.routes(10002), "default via 10.99.2.1 dev ens7"), nil
			})
			e.waitRule(rule{Priority: 10002, Table: 10002, From: "fd00:99:0:2::10/128"}, true)
			e.waitRule(ens6Rule6Prefix, true)
			for table, link := range map[int]string{10000: "ens5", 10001: "ens6", 10002: "ens7"} {
				e.waitFor(fmt.Sprintf("RA default route in table %d", table), func() (bool, error) { return e.raDefaultIn(table, link), nil })
			}
			for _, s := range []lab.ENISpec{dualStackPrimary(), dualStackSecond(), third} {
				e.waitForLeases(s)
			}
			e.waitFor("ens6's second ipv6s entry", func() (bool, error) { return e.hasAddress6("ens6", "fd00:99:0:1::20"), nil })
			time.Sleep(1500 * time.Millisecond) // one more refresh: settled
			states[bc.name] = e.kernelState([]int{10000, 10001, 10002}, []string{"ens5", "ens6", "ens7"})
			for _, src := range []string{"10.99.0.20", "10.99.1.20", "10.99.1.70", "10.99.2.10",
				"fd00:99::10", "fd00:99:0:1::10", "fd00:99:0:1::20", "fd00:99:0:2::10"} {
				e.mustPing(src)
			}
		})
	}
	first := backendCases[0].name
	want, ok := states[first]
	if !ok {
		t.Skipf("no state from %s to compare with", first)
	}
	if len(want.Rules) == 0 || len(want.Addresses["ens6"]) < 20 || !slices.ContainsFunc(want.Rules, func(r string) bool { return strings.Contains(r, ":") }) {
		t.Fatalf("%s's state is too thin to compare: %+v", first, want)
	}
	t.Logf("%s: %+v", first, want)
	for _, bc := range backendCases[1:] {
		got, ok := states[bc.name]
		if !ok {
			continue // its subtest failed or was skipped, and says why
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("kernel state after %s differs from %s (-%s +%s):\n%s", bc.name, first, first, bc.name, d)
		}
	}
}

// TestDHCPAddressIsNeverDeletedWhileASecondaryIPComesAndGoes watches every address deletion in
// the instance while a secondary IP is assigned in EC2 and unassigned again: only that address
// goes; the ENIs' DHCP addresses are never deleted, not even for a moment (open connections
// would break).
func TestDHCPAddressIsNeverDeletedWhileASecondaryIPComesAndGoes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.startAgent()
		e.waitRule(ens6Rule20, true)
		e.waitForAddress("ens6", "10.99.1.20/32")
		time.Sleep(1500 * time.Millisecond) // past the first configuration, which may replace the boot-time one

		deleted := e.watchDeletedAddrs()
		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			ips := s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s]
			s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s] = append(ips, "10.99.1.30")
		}))
		e.waitForAddress("ens6", "10.99.1.30/32")
		e.mustPing("10.99.1.30")
		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			ips := s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s]
			s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s] = slices.DeleteFunc(ips, func(ip string) bool { return ip == "10.99.1.30" })
		}))
		e.waitNoAddress("ens6", "10.99.1.30/32")
		e.mustPing("10.99.1.10")

		// Barrier: netlink events arrive in order, so once this deletion is seen, every deletion
		// the manager made before it has been seen too.
		lo, err := e.nl.LinkByName("lo")
		must(t, err)
		marker, _ := netlink.ParseAddr("192.0.2.99/32")
		must(t, e.nl.AddrAdd(lo, marker))
		must(t, e.nl.AddrDel(lo, marker))
		e.waitFor("address events caught up", func() (bool, error) { return slices.Contains(deleted(), "192.0.2.99/32"), nil })
		if got := deleted(); !slices.Equal(got, []string{"10.99.1.30/32", "192.0.2.99/32"}) {
			t.Errorf("addresses deleted while a secondary IP came and went: %v; want only 10.99.1.30/32", got)
		}
	})
}

// watchDeletedAddrs records every IPv4 address deleted in the instance from now on.
func (e *env) watchDeletedAddrs() func() []string {
	e.t.Helper()
	w, err := e.l.WatchDeletedAddrs()
	must(e.t, err)
	e.t.Cleanup(w.Close)
	return w.Prefixes
}

// TestAutoDetectsTheRunningManager asks the agent, with backend = "auto", which backend it would
// use on an instance running each manager: `plan --json` says, and why.
func TestAutoDetectsTheRunningManager(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		must(t, e.l.WriteInstanceFile("/etc/ec2-net-utils-auto.conf", lab.AgentConfig("auto", "1s", ""), 0o644))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := e.l.Command(ctx, agentBin, "plan", "--json", "--config", "/etc/ec2-net-utils-auto.conf")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("plan: %v\n%s%s", err, out, stderr.String())
		}
		var got struct {
			Backend string `json:"backend"`
			Reason  string `json:"backend_reason"`
		}
		must(t, json.Unmarshal(out, &got))
		if got.Backend != bc.name {
			t.Errorf("backend = auto chose %q (%s) on an instance running %s", got.Backend, got.Reason, bc.name)
		}
		t.Logf("auto: %s (%s)", got.Backend, got.Reason)
	})
}
