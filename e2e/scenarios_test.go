package e2e

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// forEachBackend runs a scenario against every backend's real network manager.
func forEachBackend(t *testing.T, f func(t *testing.T, bc backendCase)) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) { f(t, bc) })
	}
}

var (
	ens6Rule10  = rule{Priority: 10001, Table: 10001, From: "10.99.1.10/32"}
	ens6Rule20  = rule{Priority: 10001, Table: 10001, From: "10.99.1.20/32"}
	ens7Rule    = rule{Priority: 10002, Table: 10002, From: "10.99.2.10/32"}
	ens6Table   = []string{"10.99.1.0/24 dev ens6", "default via 10.99.1.1 dev ens6"}
	unreachable = "10.99.0.20" // the primary ENI's secondary address, unusable until configured
)

func TestBootWithTwoENIsRoutesEveryAddressThroughItsENI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()

		// Negative control, before the agent runs: the secondary addresses are not on the
		// links, and traffic from ens6's DHCP address follows the main table out of ens5 —
		// pinned with a preferred default route, as on an instance where the primary ENI's
		// default route wins — where the VPC's source/destination check drops it.
		unpin := e.pinMainDefaultViaPrimary()
		for _, src := range []string{"10.99.1.10", "10.99.1.20", unreachable} {
			e.mustNotPing(src)
		}
		unpin()

		e.startAgent()
		e.waitRule(ens6Rule10, true)
		e.waitRule(ens6Rule20, true)
		e.waitForAddress("ens6", "10.99.1.20/32")
		e.waitForAddress("ens5", "10.99.0.20/32")
		e.waitFor("ens6's table routes", func() (bool, error) { return slices.Equal(e.routes(10001), ens6Table), nil })
		if slices.ContainsFunc(e.rules(), func(r rule) bool { return r.Priority == 10000 }) {
			t.Errorf("the primary ENI got source rules; it must not (Docker bridge hairpin): %v", e.rules())
		}
		e.waitAltnames("ens5", "eni-00000000000000000", "device-number-0.0")
		e.waitAltnames("ens6", "eni-00000000000000001", "device-number-1.0")
		// networkd and NetworkManager may re-acquire ens6's lease when the agent's configuration
		// replaces theirs; a ping from an address the link does not have yet proves nothing.
		e.waitForAddress("ens6", "10.99.1.10/24")
		unpin = e.pinMainDefaultViaPrimary() // the negative control's preference: rules must win over it
		for _, src := range []string{"10.99.0.10", "10.99.0.20", "10.99.1.10", "10.99.1.20"} {
			e.mustPing(src)
		}
		unpin()
		e.assertForeignRulesIntact()
	})
}

func TestHotAttachedENIIsRoutedAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), secondENI(), thirdENI()}})
		e.addForeignRules()
		e.startAgent()
		e.waitRule(ens6Rule10, true)

		start := time.Now()
		must(t, e.l.Attach("ens7"))
		e.waitRule(ens7Rule, true)
		e.waitFor("ens7's default route in table 10002", func() (bool, error) {
			return slices.Contains(e.routes(10002), "default via 10.99.2.1 dev ens7"), nil
		})
		t.Logf("attach -> source rule and table default route in the kernel: %v", time.Since(start).Round(time.Millisecond))
		// With ifcfg the rule and route come before the DHCP lease (the agent adds them while its
		// dhclient asks); a ping from the address needs both.
		e.waitForAddress("ens7", "10.99.2.10/24")
		t.Logf("attach -> DHCP address on ens7: %v", time.Since(start).Round(time.Millisecond))
		e.mustPing("10.99.2.10")
		e.waitAltnames("ens7", "eni-00000000000000002", "device-number-2.0")
		e.assertForeignRulesIntact()
	})
}

func TestSecondaryIPAddedIsRoutedWithinOneRefreshAndRemovedAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()
		e.startAgent()
		e.waitRule(ens6Rule10, true)

		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			ips := s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s]
			s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s] = append(ips, "10.99.1.30")
		}))
		e.waitForAddress("ens6", "10.99.1.30/32")
		e.waitRule(rule{Priority: 10001, Table: 10001, From: "10.99.1.30/32"}, true)
		e.mustPing("10.99.1.30")

		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			ips := s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s]
			s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s] = slices.DeleteFunc(ips, func(ip string) bool { return ip == "10.99.1.30" })
		}))
		e.waitNoAddress("ens6", "10.99.1.30/32")
		e.waitRule(rule{Priority: 10001, Table: 10001, From: "10.99.1.30/32"}, false)
		if !slices.Contains(e.addresses("ens6"), "10.99.1.10/24") {
			t.Errorf("ens6 lost its DHCP address during the change: %v", e.addresses("ens6"))
		}
		e.mustPing("10.99.1.10")
		e.assertForeignRulesIntact()
	})
}

func TestDelegatedPrefixGetsARuleAndOptionallyItsAddresses(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		for _, assign := range []bool{false, true} {
			name := "rules only"
			if assign {
				name = "assign_prefix_addresses"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, bc, envOptions{interfaces: fmt.Sprintf("assign_prefix_addresses = %v", assign)})
				e.addForeignRules()
				e.startAgent()
				e.waitRule(ens6Rule10, true)
				must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
					s.Interfaces["02:00:00:00:06:06"][core.KeyIPv4Prefix] = scenario.Value{"10.99.1.64/28"}
				}))
				e.waitRule(rule{Priority: 10001, Table: 10001, From: "10.99.1.64/28"}, true)
				if assign {
					e.waitForAddress("ens6", "10.99.1.64/32")
					e.waitForAddress("ens6", "10.99.1.79/32")
					e.mustPing("10.99.1.70")
				} else {
					time.Sleep(1500 * time.Millisecond) // one more refresh: still no prefix addresses
					if slices.Contains(e.addresses("ens6"), "10.99.1.64/32") {
						t.Errorf("prefix addresses assigned without assign_prefix_addresses: %v", e.addresses("ens6"))
					}
				}
				e.assertForeignRulesIntact()
			})
		}
	})
}

func TestDetachRemovesFilesRulesAndRoutesWithoutReload(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()
		e.startAgent()
		e.waitRule(ens6Rule10, true)
		e.waitFor("ens6's table routes", func() (bool, error) { return slices.Equal(e.routes(10001), ens6Table), nil })
		if len(e.filesOf("ens6")) == 0 {
			t.Fatalf("no files for ens6 before detach: %v", keys(e.files()))
		}
		reloads := e.reloads.N()

		must(t, e.l.Detach("ens6"))
		e.waitFor("ens6's files removed", func() (bool, error) { return len(e.filesOf("ens6")) == 0, nil })
		e.waitRule(ens6Rule10, false)
		e.waitRule(ens6Rule20, false)
		if rs := e.routes(10001); len(rs) != 0 {
			t.Errorf("table 10001 still has routes after detach: %v", rs)
		}
		time.Sleep(1500 * time.Millisecond) // a refresh passes: still no reload
		if got := e.reloads.N() - reloads; got != 0 {
			t.Errorf("detach caused %d networkd reload(s), want 0", got)
		}
		e.mustPing("10.99.0.10")
		e.assertForeignRulesIntact()
	})
}

func TestDaemonRestartOnConfiguredHostRewritesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()
		e.startAgent()
		e.waitRule(ens6Rule20, true)
		e.waitForAddress("ens6", "10.99.1.20/32")
		time.Sleep(1500 * time.Millisecond) // let a refresh pass: steady state
		e.stopAgent()

		before, reloads := e.files(), e.reloads.N()
		e.startAgent()
		time.Sleep(2500 * time.Millisecond) // two refreshes with nothing to change
		after := e.files()
		for name, st := range before {
			if after[name] != st {
				t.Errorf("%s rewritten by a restart with nothing to change", name)
			}
		}
		if len(after) != len(before) {
			t.Errorf("files before %v, after %v", keys(before), keys(after))
		}
		if got := e.reloads.N() - reloads; got != 0 {
			t.Errorf("restart and refreshes caused %d reload(s), want 0", got)
		}
		e.assertForeignRulesIntact()
	})
}

func TestRuleDeletedByHandComesBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()
		e.startAgent()
		e.waitRule(ens6Rule10, true)

		r := netlink.NewRule()
		r.Priority, r.Table, r.Src = 10001, 10001, mustIPNet("10.99.1.10/32")
		must(t, e.nl.RuleDel(r))
		if e.hasRule(ens6Rule10) {
			t.Fatal("rule still there right after deleting it")
		}
		e.waitRule(ens6Rule10, true)
		e.mustPing("10.99.1.10")
		e.assertForeignRulesIntact()
	})
}

func TestIMDSOutageRemovesNothingAndConvergesAfter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()
		e.startAgent()
		e.waitRule(ens6Rule20, true)
		e.waitForAddress("ens6", "10.99.1.20/32")
		files := e.files()

		e.l.IMDS().SetDown(true)
		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			ips := s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s]
			s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s] = append(ips, "10.99.1.40")
		}))
		e.waitLog("a refresh that could not reach IMDS", "IMDS unreachable")
		time.Sleep(2 * time.Second) // more failed refreshes
		if !e.hasRule(ens6Rule20) || !slices.Contains(e.addresses("ens6"), "10.99.1.20/32") {
			t.Errorf("state removed while IMDS was unreachable: rules %v addresses %v", e.rules(), e.addresses("ens6"))
		}
		if got := keys(e.files()); !slices.Equal(got, keys(files)) {
			t.Errorf("files changed while IMDS was unreachable: %v, want %v", got, keys(files))
		}

		e.l.IMDS().SetDown(false)
		e.waitForAddress("ens6", "10.99.1.40/32")
		e.waitRule(rule{Priority: 10001, Table: 10001, From: "10.99.1.40/32"}, true)
		e.mustPing("10.99.1.40")
		e.assertForeignRulesIntact()
	})
}

// pinMainDefaultViaPrimary makes the main table prefer ens5 (metric 1), as on an instance where
// the primary ENI's default route wins, and returns the undo. It retries while ens5 has no
// address: a manager switching ens5 to the agent's configuration may re-acquire it once.
func (e *env) pinMainDefaultViaPrimary() (unpin func()) {
	e.t.Helper()
	pin := &netlink.Route{Dst: mustIPNet("0.0.0.0/0"), Gw: net.ParseIP("10.99.0.1"), Priority: 1, LinkIndex: linkIndex(e.t, e, "ens5")}
	e.waitFor("pin the main default route via ens5", func() (bool, error) { return e.nl.RouteReplace(pin) == nil, nil })
	return func() {
		if err := e.nl.RouteDel(pin); err != nil && !errors.Is(err, unix.ESRCH) {
			e.t.Errorf("remove the pinned route: %v", err)
		}
	}
}

func linkIndex(t *testing.T, e *env, name string) int {
	t.Helper()
	l, err := e.nl.LinkByName(name)
	must(t, err)
	return l.Attrs().Index
}

func mustIPNet(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}
