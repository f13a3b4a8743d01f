package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// IPv6 end to end (issue #12). The lab's dual-stack subnets are fd00:99:0:N::/64; the router
// advertises them with the Managed flag and hands out each ENI's first ipv6s entry by DHCPv6.

func dualStackPrimary() lab.ENISpec {
	s := primaryENI()
	s.IPv6s = []string{"fd00:99::10"}
	return s
}

func dualStackSecond() lab.ENISpec {
	s := secondENI()
	s.IPv6s = []string{"fd00:99:0:1::10", "fd00:99:0:1::20"}
	s.IPv6Prefixes = []string{"fd00:99:0:1:1::/80"}
	return s
}

var (
	ens6Rule6DHCP   = rule{Priority: 10001, Table: 10001, From: "fd00:99:0:1::10/128"}
	ens6Rule6Second = rule{Priority: 10001, Table: 10001, From: "fd00:99:0:1::20/128"}
	ens6Rule6Prefix = rule{Priority: 10001, Table: 10001, From: "fd00:99:0:1:1::/80"}
)

// Scenario 1: boot with a dual-stack secondary ENI (two ipv6s, an ipv6-prefix /80).
func TestIPv6BootWithDualStackSecondaryENI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{dualStackPrimary(), dualStackSecond()}})
		e.addForeignRules()
		defer e.dumpIPv6OnFailure()

		// Negative control: before the agent, traffic from ens6's IPv6 addresses follows main out
		// of ens5 (pinned, as on an instance where the primary's RA default route wins), where the
		// source check drops it. The second ipv6s entry and an address inside the delegated prefix
		// are put on ens6 by hand for it, so that the pings leave the instance and it is the
		// source check, counted, that stops them — not a missing address.
		handAdded := []string{"fd00:99:0:1::20", "fd00:99:0:1:1::7"}
		for _, a := range handAdded {
			must(t, e.addAddress6("ens6", a))
		}
		before := e.ipv6SourceCheckDrops()
		unpin := e.pinMainDefault6ViaPrimary()
		for _, src := range handAdded {
			e.mustNotPing(src)
		}
		unpin()
		if dropped := e.ipv6SourceCheckDrops() - before; dropped < len(handAdded) {
			t.Errorf("the source check dropped %d IPv6 packets during the negative control, want >= %d: the pings failed for another reason", dropped, len(handAdded))
		}
		for _, a := range handAdded {
			must(t, e.delAddress6("ens6", a))
		}

		drops := e.watchIPv6Drops()
		start := time.Now()
		e.startAgent()
		e.waitRule(ens6Rule10, true) // IPv4 first: the agent has configured ens6
		ok := e.eventually("IPv6 rule for the DHCPv6 address", func() bool { return e.hasRule(ens6Rule6DHCP) })
		ok = e.eventually("IPv6 rule for the second ipv6s entry", func() bool { return e.hasRule(ens6Rule6Second) }) && ok
		ok = e.eventually("IPv6 rule for the delegated prefix", func() bool { return e.hasRule(ens6Rule6Prefix) }) && ok
		ok = e.eventually("RA default route in table 10001", func() bool { return e.raDefaultIn(10001, "ens6") }) && ok
		ok = e.eventually("subnet route fd00:99:0:1::/64 in table 10001", func() bool {
			return slices.Contains(e.routes(10001), "fd00:99:0:1::/64 dev ens6")
		}) && ok
		ok = e.eventually("DHCPv6 address fd00:99:0:1::10 on ens6", func() bool { return e.hasAddress6("ens6", "fd00:99:0:1::10") }) && ok
		ok = e.eventually("second ipv6s entry fd00:99:0:1::20 on ens6", func() bool { return e.hasAddress6("ens6", "fd00:99:0:1::20") }) && ok
		t.Logf("IPv6 state converged: %v", ok)

		e.waitDHCPv6Back(drops, start)
		// An address inside the delegated prefix, added as a container runtime would.
		must(t, e.addAddress6("ens6", "fd00:99:0:1:1::7"))
		unpin = e.pinMainDefault6ViaPrimary() // the rules must win over the negative control's preference
		for _, src := range []string{"fd00:99::10", "fd00:99:0:1::10", "fd00:99:0:1::20", "fd00:99:0:1:1::7"} {
			if e.hasAddress6Any(src) {
				e.mustPing(src)
			} else {
				t.Errorf("ping -6 from %s: the address is on no link", src)
			}
		}
		unpin()
		// IPv4 still works next to it.
		e.mustPing("10.99.1.10")
		e.mustPing("10.99.1.20")
		e.assertForeignRulesIntact()
	})
}

// Scenario 2: hot attach of a dual-stack ENI: IPv4 and IPv6 routed, and the time from attach to
// IPv6 routed. The router is unknown when the agent first sees the link, so this is where a
// manager must pick up the RA later without restarting IPv6.
func TestIPv6HotAttachedDualStackENIIsRouted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		third := thirdENI()
		third.IPv6s = []string{"fd00:99:0:2::10"}
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{dualStackPrimary(), secondENI(), third}})
		e.addForeignRules()
		defer e.dumpIPv6OnFailure()
		e.startAgent()
		e.waitRule(ens6Rule10, true)
		reloads := e.reloads.N()

		drops := e.watchIPv6Drops()
		start := time.Now()
		must(t, e.l.Attach("ens7"))
		e.waitRule(ens7Rule, true)
		ok := e.eventually("ens7's IPv6 rule", func() bool {
			return e.hasRule(rule{Priority: 10002, Table: 10002, From: "fd00:99:0:2::10/128"})
		})
		ok = e.eventually("ens7's RA default route in table 10002", func() bool { return e.raDefaultIn(10002, "ens7") }) && ok
		ok = e.eventually("ens7's DHCPv6 address", func() bool { return e.hasAddress6("ens7", "fd00:99:0:2::10") }) && ok
		if ok {
			t.Logf("attach -> IPv6 routed (rule, table default route, DHCPv6 address): %v", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(3 * time.Second) // does it stay, or does the manager keep restarting IPv6?
		e.waitDHCPv6Back(drops, start)
		t.Logf("reloads since the attach: %d", e.reloads.N()-reloads)
		e.mustPing("10.99.2.10")
		e.mustPing("fd00:99:0:2::10")
		e.assertForeignRulesIntact()
	})
}

// Scenario 3: an address added to and removed from ipv6s: rule and address follow within one
// refresh, and neither the DHCPv6 addresses nor the ENI tables' IPv6 default routes are dropped
// meanwhile, nor during an IPv4 change.
func TestIPv6AddressAddedAndRemovedDropsNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		second := secondENI()
		second.IPv6s = []string{"fd00:99:0:1::10"}
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{dualStackPrimary(), second}})
		e.addForeignRules()
		defer e.dumpIPv6OnFailure()
		e.startAgent()
		e.waitRule(ens6Rule6DHCP, true)
		// Steady state first: the RA-learned router puts the ENI table's route in place (scenario 6).
		if !e.eventually("RA default route in table 10001", func() bool { return e.raDefaultIn(10001, "ens6") }) {
			t.FailNow()
		}
		drops := e.watchIPv6Drops()
		start := time.Now()
		const mac = "02:00:00:00:06:06"

		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			s.Interfaces[mac][core.KeyLocalIPv4s] = append(s.Interfaces[mac][core.KeyLocalIPv4s], "10.99.1.30")
		}))
		e.waitForAddress("ens6", "10.99.1.30/32")
		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			s.Interfaces[mac][core.KeyLocalIPv4s] = slices.DeleteFunc(s.Interfaces[mac][core.KeyLocalIPv4s], func(a string) bool { return a == "10.99.1.30" })
		}))
		e.waitNoAddress("ens6", "10.99.1.30/32")
		t.Logf("IPv4 address added and removed: %v", time.Since(start).Round(time.Millisecond))

		added := rule{Priority: 10001, Table: 10001, From: "fd00:99:0:1::30/128"}
		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			s.Interfaces[mac][core.KeyIPv6s] = append(s.Interfaces[mac][core.KeyIPv6s], "fd00:99:0:1::30")
		}))
		e.eventually("rule for the added ipv6s entry", func() bool { return e.hasRule(added) })
		e.eventually("the added ipv6s entry on ens6", func() bool { return e.hasAddress6("ens6", "fd00:99:0:1::30") })
		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			s.Interfaces[mac][core.KeyIPv6s] = slices.DeleteFunc(s.Interfaces[mac][core.KeyIPv6s], func(a string) bool { return a == "fd00:99:0:1::30" })
		}))
		e.eventually("rule for the removed ipv6s entry gone", func() bool { return !e.hasRule(added) })
		e.eventually("the removed ipv6s entry gone from ens6", func() bool { return !e.hasAddress6("ens6", "fd00:99:0:1::30") })
		time.Sleep(1500 * time.Millisecond) // one more refresh
		e.waitDHCPv6Back(drops, start)

		for _, a := range []string{"fd00:99::10", "fd00:99:0:1::10"} {
			if n := drops.addrDeleted(a); n != 0 {
				t.Errorf("DHCPv6 address %s deleted %d times during the changes, want 0", a, n)
			}
		}
		for _, table := range []int{10000, 10001} {
			if n := drops.defaultDeleted(table); n != 0 {
				t.Errorf("table %d lost its IPv6 default route %d times during the changes, want 0", table, n)
			}
		}
		e.mustPing("fd00:99:0:1::10")
		e.assertForeignRulesIntact()
	})
}

// Scenario 8: detaching a dual-stack ENI removes its IPv6 rules and routes too.
func TestIPv6DetachLeavesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{dualStackPrimary(), dualStackSecond()}})
		e.addForeignRules()
		defer e.dumpIPv6OnFailure()
		e.startAgent()
		e.waitRule(ens6Rule6DHCP, true)
		e.waitRule(ens6Rule6Prefix, true)
		// Steady state first: what the start pass's reload did to the primary's IPv6 is scenario
		// 3's to count, not the detach's. networkd reconfigures after the reload returns: give it
		// time to start dropping before waiting for the addresses and routes to be back.
		time.Sleep(2 * time.Second)
		e.eventually("ens5's RA default route in main", func() bool { return e.raRouter("ens5") != nil })
		e.eventually("ens5's DHCPv6 address", func() bool { return e.hasAddress6("ens5", "fd00:99::10") })
		drops := e.watchIPv6Drops()
		start := time.Now()
		must(t, e.l.Detach("ens6"))
		for _, r := range []rule{ens6Rule6DHCP, ens6Rule6Second, ens6Rule6Prefix, ens6Rule10, ens6Rule20} {
			e.eventually(fmt.Sprintf("rule %s gone", r), func() bool { return !e.hasRule(r) })
		}
		e.eventually("table 10001 empty", func() bool { return len(e.routes(10001)) == 0 })
		e.eventually("ens6's files removed", func() bool { return len(e.filesOf("ens6")) == 0 })
		e.waitDHCPv6Back(drops, start)
		if n := drops.addrDeleted("fd00:99::10"); n != 0 {
			t.Errorf("the primary ENI's DHCPv6 address was deleted %d times by the detach of another ENI, want 0", n)
		}
		e.mustPing("fd00:99::10")
		e.assertForeignRulesIntact()
	})
}

// Scenario 5: an IPv6-only instance. IMDS answers only on [fd00:ec2::254]; the agent, with no
// endpoint configured, finds it and configures the ENIs.
func TestIPv6OnlyInstanceFindsIMDSWithoutConfiguration(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		primary := lab.ENISpec{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", IPv6Only: true,
			IPv6s: []string{"fd00:99::10"}, Attached: true}
		second := lab.ENISpec{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1, IPv6Only: true,
			IPv6s: []string{"fd00:99:0:1::10"}, Attached: true}
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primary, second}, imds: lab.IMDSIPv6Only, autoEndpoint: true})
		e.addForeignRules()
		defer e.dumpIPv6OnFailure()

		drops := e.watchIPv6Drops()
		start := time.Now()
		e.startAgent()
		t.Logf("agent start -> first reconcile done: %v", time.Since(start).Round(time.Millisecond))
		if !strings.Contains(e.agent.Log(), "fd00:ec2::254") {
			t.Errorf("the agent's log does not name the IPv6 endpoint it found")
		}
		ok := e.eventually("IPv6 rule for ens6's address", func() bool { return e.hasRule(ens6Rule6DHCP) })
		ok = e.eventually("RA default route in table 10001", func() bool { return e.raDefaultIn(10001, "ens6") }) && ok
		ok = e.eventually("subnet route in table 10001", func() bool {
			return slices.Contains(e.routes(10001), "fd00:99:0:1::/64 dev ens6")
		}) && ok
		ok = e.eventually("DHCPv6 address on ens6", func() bool { return e.hasAddress6("ens6", "fd00:99:0:1::10") }) && ok
		t.Logf("IPv6 state converged: %v", ok)
		for _, r := range e.rules() {
			if r.Priority == 10001 && r.Table == 10001 && !strings.Contains(r.From, ":") && r.From != "10.99.1.77/32" { // 10.99.1.77: foreign
				t.Errorf("IPv4 rule on an IPv6-only ENI: %s", r)
			}
		}
		for _, r := range e.routes(10001) {
			if !strings.Contains(r, ":") {
				t.Errorf("IPv4 route in the IPv6-only ENI's table: %s", r)
			}
		}
		e.waitDHCPv6Back(drops, start)
		unpin := e.pinMainDefault6ViaPrimary()
		e.mustPing("fd00:99:0:1::10")
		unpin()
		e.mustPing("fd00:99::10")
		e.assertForeignRulesIntact()
	})
}

// waitForLeases waits for an ENI's DHCP addresses: the primary IPv4 one and, on a dual-stack or
// IPv6-only subnet, the DHCPv6 one.
func (e *env) waitForLeases(spec lab.ENISpec) {
	e.t.Helper()
	if len(spec.PrivateIPs) > 0 {
		e.waitForAddress(spec.Name, spec.PrivateIPs[0]+"/24")
	}
	if len(spec.IPv6s) > 0 {
		e.waitFor(fmt.Sprintf("%s has its DHCPv6 address %s", spec.Name, spec.IPv6s[0]), func() (bool, error) {
			return e.hasAddress6(spec.Name, spec.IPv6s[0]), nil
		})
	}
}

// withoutEndpoint removes imds.endpoint from the lab's agent configuration.
func withoutEndpoint(t *testing.T, config string) string {
	t.Helper()
	lines := strings.Split(config, "\n")
	out := slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "endpoint =") })
	if len(out) != len(lines)-1 {
		t.Fatalf("no single imds endpoint line in the lab's agent configuration:\n%s", config)
	}
	return strings.Join(out, "\n")
}

// eventually waits like waitFor but records a failure instead of stopping the test, so one run
// reports every IPv6 defect of a backend.
func (e *env) eventually(what string, cond func() bool) bool {
	e.t.Helper()
	return e.eventuallyWithin(what, waitLong, cond)
}

func (e *env) eventuallyWithin(what string, timeout time.Duration, cond func() bool) bool {
	e.t.Helper()
	err := e.l.WaitFor(context.Background(), what, timeout, func() (bool, error) { return cond(), nil })
	if err != nil {
		e.t.Errorf("%v", err)
		return false
	}
	return true
}

// addresses6 lists link's usable (not tentative) IPv6 addresses, without prefix length.
func (e *env) addresses6(link string) []string {
	e.t.Helper()
	l, err := e.nl.LinkByName(link)
	if err != nil {
		return nil
	}
	as, err := e.nl.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		e.t.Fatalf("ip -6 addr show %s: %v", link, err)
	}
	var out []string
	for _, a := range as {
		if a.Flags&unix.IFA_F_TENTATIVE == 0 {
			out = append(out, a.IP.String())
		}
	}
	return out
}

func (e *env) hasAddress6(link, addr string) bool { return slices.Contains(e.addresses6(link), addr) }

func (e *env) hasAddress6Any(addr string) bool {
	return slices.ContainsFunc(e.enis, func(s lab.ENISpec) bool { return e.hasAddress6(s.Name, addr) })
}

// delAddress6 removes what addAddress6 added.
func (e *env) delAddress6(link, addr string) error {
	l, a, err := e.hostAddress6(link, addr)
	if err != nil {
		return err
	}
	return e.nl.AddrDel(l, a)
}

// ipv6SourceCheckDrops is the number of IPv6 packets the VPC's source check has dropped so far,
// over all ENIs.
func (e *env) ipv6SourceCheckDrops() int {
	e.t.Helper()
	d, err := e.l.Drops6()
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, c := range d {
		n += c
	}
	return n
}

// addAddress6 adds addr/128 to link without duplicate address detection.
func (e *env) addAddress6(link, addr string) error {
	l, a, err := e.hostAddress6(link, addr)
	if err != nil {
		return err
	}
	a.Flags = unix.IFA_F_NODAD
	return e.nl.AddrAdd(l, a)
}

// hostAddress6 is link and addr/128, as netlink takes them.
func (e *env) hostAddress6(link, addr string) (netlink.Link, *netlink.Addr, error) {
	l, err := e.nl.LinkByName(link)
	if err != nil {
		return nil, nil, err
	}
	a, err := netlink.ParseAddr(addr + "/128")
	return l, a, err
}

// raRouter is the link-local router of link's RA default route in main, nil without one. With
// RAs on several links the kernel merges the default routes into one multipath route.
func (e *env) raRouter(link string) net.IP {
	l, err := e.nl.LinkByName(link)
	if err != nil {
		return nil
	}
	rs, err := e.nl.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil
	}
	for _, r := range rs {
		if r.Dst != nil && !isDefault(r.Dst) {
			continue
		}
		if r.LinkIndex == l.Attrs().Index && r.Gw != nil && r.Gw.IsLinkLocalUnicast() {
			return r.Gw
		}
		for _, nh := range r.MultiPath {
			if nh.LinkIndex == l.Attrs().Index && nh.Gw != nil && nh.Gw.IsLinkLocalUnicast() {
				return nh.Gw
			}
		}
	}
	return nil
}

// raDefaultIn reports an IPv6 default route via a link-local router on link in table.
func (e *env) raDefaultIn(table int, link string) bool {
	return slices.ContainsFunc(e.routes(table), func(r string) bool {
		return strings.HasPrefix(r, "default via fe80:") && strings.HasSuffix(r, " dev "+link)
	})
}

// pinMainDefault6ViaPrimary is pinMainDefaultViaPrimary for IPv6: main prefers ens5's router.
func (e *env) pinMainDefault6ViaPrimary() (unpin func()) {
	e.t.Helper()
	var pin *netlink.Route
	e.waitFor("pin the main IPv6 default route via ens5", func() (bool, error) {
		gw := e.raRouter("ens5")
		if gw == nil {
			return false, nil
		}
		pin = &netlink.Route{Dst: mustIPNet("::/0"), Gw: gw, Priority: 1, LinkIndex: linkIndex(e.t, e, "ens5")}
		return e.nl.RouteReplace(pin) == nil, nil
	})
	return func() {
		if err := e.nl.RouteDel(pin); err != nil && !errors.Is(err, unix.ESRCH) {
			e.t.Errorf("remove the pinned IPv6 route: %v", err)
		}
	}
}

// dumpIPv6OnFailure logs the instance's IPv6 addresses and main routes when the test failed.
func (e *env) dumpIPv6OnFailure() {
	if !e.t.Failed() {
		return
	}
	for _, s := range e.enis {
		e.t.Logf("%s IPv6 addresses: %v", s.Name, e.addresses6(s.Name))
	}
	e.t.Logf("table main: %v", e.routes(unix.RT_TABLE_MAIN))
	if d, err := e.l.Drops6(); err == nil {
		e.t.Logf("IPv6 source-check drops: %v", d)
	}
	if m := e.l.Manager(); m != nil {
		var lines []string
		for line := range strings.SplitSeq(m.Log(), "\n") {
			l := strings.ToLower(line)
			if strings.Contains(l, "ipv6") || strings.Contains(l, "dhcp6") || strings.Contains(l, "ndisc") ||
				strings.Contains(l, "reapply") || strings.Contains(l, "route6") || strings.Contains(l, "ip6") {
				lines = append(lines, line)
			}
		}
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		e.t.Logf("%s log, IPv6 lines (last %d):\n%s", e.backend.name, len(lines), strings.Join(lines, "\n"))
	}
}

// ipv6Drops records, from a netlink subscription in the instance, every global IPv6 address
// deleted or added and every IPv6 default route deleted from or added to an ENI table: a timeline
// that shows a manager
// restarting IPv6 under the agent (issue #12: networkd reloads, NetworkManager's Reapply).
type ipv6Drops struct {
	mu     sync.Mutex
	events []string
	// deletedAddrs and deletedDefaults count deletions by address and by ENI table.
	deletedAddrs    map[string]int
	deletedDefaults map[int]int
	start           time.Time
}

func (d *ipv6Drops) add(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, fmt.Sprintf("+%v ", time.Since(d.start).Round(time.Millisecond))+fmt.Sprintf(format, args...))
}

func (d *ipv6Drops) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.events)
}

// addrDeleted is how often addr was deleted; defaultDeleted how often table lost an IPv6 default.
func (d *ipv6Drops) addrDeleted(addr string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.deletedAddrs[addr]
}

func (d *ipv6Drops) defaultDeleted(table int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.deletedDefaults[table]
}

func (e *env) watchIPv6Drops() *ipv6Drops {
	e.t.Helper()
	d := &ipv6Drops{start: time.Now(), deletedAddrs: map[string]int{}, deletedDefaults: map[int]int{}}
	done := make(chan struct{})
	e.t.Cleanup(func() { close(done) })
	ns := e.l.InstanceNS()
	addrs := make(chan netlink.AddrUpdate, 256)
	must(e.t, netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{Namespace: &ns}))
	routes := make(chan netlink.RouteUpdate, 256)
	must(e.t, netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: &ns}))
	go func() {
		for u := range addrs {
			if u.LinkAddress.IP.To4() == nil && u.LinkAddress.IP.IsLinkLocalUnicast() {
				// Not counted, but a link-local address deleted under a manager explains a DHCPv6
				// client that cannot get its lease back (NM 1.42 after a Reapply).
				d.add("link-local address %s %s (link %d, flags %#x)", u.LinkAddress.IP, map[bool]string{true: "added", false: "deleted"}[u.NewAddr], u.LinkIndex, u.Flags)
			}
			if u.LinkAddress.IP.To4() == nil && !u.LinkAddress.IP.IsLinkLocalUnicast() {
				d.add("address %s %s (link %d)", u.LinkAddress.IP, map[bool]string{true: "added", false: "deleted"}[u.NewAddr], u.LinkIndex)
				if !u.NewAddr {
					d.mu.Lock()
					d.deletedAddrs[u.LinkAddress.IP.String()]++
					d.mu.Unlock()
				}
			}
		}
	}()
	go func() {
		for u := range routes {
			if u.Family == netlink.FAMILY_V6 && (u.Dst == nil || isDefault(u.Dst)) && u.Table >= 10000 {
				d.add("IPv6 default route %s table %d (gw %s)", map[uint16]string{unix.RTM_NEWROUTE: "added to", unix.RTM_DELROUTE: "deleted from"}[u.Type], u.Table, u.Gw)
				if u.Type == unix.RTM_DELROUTE {
					d.mu.Lock()
					d.deletedDefaults[u.Table]++
					d.mu.Unlock()
				}
			}
		}
	}()
	return d
}

// waitDHCPv6Back waits until every ENI has its DHCPv6 address again and logs the IPv6 timeline
// since the watch began (drops are not asserted here: scenario 3 counts them).
func (e *env) waitDHCPv6Back(d *ipv6Drops, start time.Time) {
	e.t.Helper()
	for _, s := range e.enis {
		if _, err := e.nl.LinkByName(s.Name); err == nil && len(s.IPv6s) > 0 { // attached now
			e.eventually(s.Name+" has its DHCPv6 address "+s.IPv6s[0], func() bool { return e.hasAddress6(s.Name, s.IPv6s[0]) })
		}
	}
	if ev := d.list(); len(ev) > 0 {
		e.t.Logf("IPv6 timeline, from the agent's start or the attach (%v ago): %d events:\n  %s", time.Since(start).Round(time.Millisecond), len(ev), strings.Join(ev, "\n  "))
	} else {
		e.t.Logf("IPv6 timeline, from the agent's start or the attach: nothing")
	}
}

// Scenario 4: an IPv6-only ENI on a dual-stack instance gets IPv6 rules and routes only: no IPv4
// rule, no IPv4 route (above all no IPv4 default) in its table.
func TestIPv6OnlyENIOnADualStackInstance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		second := lab.ENISpec{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1, IPv6Only: true,
			IPv6s: []string{"fd00:99:0:1::10", "fd00:99:0:1::20"}, Attached: true}
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{dualStackPrimary(), second}})
		e.addForeignRules()
		defer e.dumpIPv6OnFailure()
		drops := e.watchIPv6Drops()
		start := time.Now()
		e.startAgent()
		ok := e.eventually("IPv6 rule for the DHCPv6 address", func() bool { return e.hasRule(ens6Rule6DHCP) })
		ok = e.eventually("IPv6 rule for the second ipv6s entry", func() bool { return e.hasRule(ens6Rule6Second) }) && ok
		ok = e.eventually("RA default route in table 10001", func() bool { return e.raDefaultIn(10001, "ens6") }) && ok
		ok = e.eventually("subnet route in table 10001", func() bool {
			return slices.Contains(e.routes(10001), "fd00:99:0:1::/64 dev ens6")
		}) && ok
		ok = e.eventually("second ipv6s entry on ens6", func() bool { return e.hasAddress6("ens6", "fd00:99:0:1::20") }) && ok
		t.Logf("IPv6 state converged: %v", ok)
		e.waitDHCPv6Back(drops, start)
		time.Sleep(1500 * time.Millisecond) // one more refresh: nothing IPv4 comes later either
		for _, r := range e.rules() {
			if r.Priority == 10001 && r.Table == 10001 && !strings.Contains(r.From, ":") && r.From != "10.99.1.77/32" { // 10.99.1.77: foreign
				t.Errorf("IPv4 rule on an IPv6-only ENI: %s", r)
			}
		}
		for _, r := range e.routes(10001) {
			if !strings.Contains(r, ":") {
				t.Errorf("IPv4 route in the IPv6-only ENI's table: %s", r)
			}
		}
		unpin := e.pinMainDefault6ViaPrimary()
		e.mustPing("fd00:99:0:1::10")
		e.mustPing("fd00:99:0:1::20")
		unpin()
		e.mustPing("10.99.0.10") // the primary's IPv4 is untouched
		e.assertForeignRulesIntact()
	})
}

// Scenario 6: the RA arrives after the agent applied (here 3 s after a hot attach, its RAs held
// back by the VPC): the ENI table's default route follows within a second of the RA, not at the
// next full refresh. The delay is logged from the moment the instance learned the router (its RA
// default route in main) to the route in the ENI table.
func TestIPv6LateRAPutsTheDefaultRouteInPlace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		third := thirdENI()
		third.IPv6s = []string{"fd00:99:0:2::10"}
		// No refresh during the test: the RA itself must get the route in place.
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{dualStackPrimary(), secondENI(), third}, refreshInterval: "10m"})
		e.addForeignRules()
		defer e.dumpIPv6OnFailure()
		e.startAgent()
		e.waitRule(ens6Rule10, true)

		must(t, e.l.BlockRA(2, true))
		must(t, e.l.Attach("ens7"))
		e.waitRule(rule{Priority: 10002, Table: 10002, From: "fd00:99:0:2::10/128"}, true)
		time.Sleep(3 * time.Second) // the agent has applied; no RA yet
		if e.raDefaultIn(10002, "ens7") {
			t.Fatal("table 10002 has an RA default route while RAs are blocked: the test proves nothing")
		}
		seen := e.watchRADefaults("ens7", 10002)
		must(t, e.l.BlockRA(2, false))
		unblocked := time.Now()
		must(t, e.l.SolicitRouter("ens7"))
		ok := e.eventually("ens7's RA default route in table 10002", func() bool { return e.raDefaultIn(10002, "ens7") })
		learned, routed := seen()
		switch {
		case !ok:
		case learned.IsZero():
			t.Logf("RA unblocked -> route in table 10002: %v (the RA default in main was not seen)", routed.Sub(unblocked).Round(time.Millisecond))
		default:
			t.Logf("late RA: router learned %v after the unblock; route in table 10002 %v after the RA",
				learned.Sub(unblocked).Round(time.Millisecond), routed.Sub(learned).Round(time.Millisecond))
		}
		e.eventually("ens7's DHCPv6 address", func() bool { return e.hasAddress6("ens7", "fd00:99:0:2::10") })
		e.mustPing("fd00:99:0:2::10")
		e.assertForeignRulesIntact()
	})
}

// watchRADefaults records when link first got an RA default route in main (the instance learned
// the router) and when table first got an IPv6 default route via link; seen returns both (zero
// when not yet).
func (e *env) watchRADefaults(link string, table int) (seen func() (learned, routed time.Time)) {
	e.t.Helper()
	index := linkIndex(e.t, e, link)
	var mu sync.Mutex
	var learned, routed time.Time
	done := make(chan struct{})
	e.t.Cleanup(func() { close(done) })
	ns := e.l.InstanceNS()
	routes := make(chan netlink.RouteUpdate, 256)
	must(e.t, netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: &ns}))
	go func() {
		for u := range routes {
			now := time.Now()
			if u.Type != unix.RTM_NEWROUTE || u.Family != netlink.FAMILY_V6 || (u.Dst != nil && !isDefault(u.Dst)) || u.LinkIndex != index {
				continue
			}
			mu.Lock()
			switch {
			case u.Table == unix.RT_TABLE_MAIN && u.Protocol == unix.RTPROT_RA && learned.IsZero():
				learned = now
			case u.Table == table && routed.IsZero():
				routed = now
			}
			mu.Unlock()
		}
	}()
	return func() (time.Time, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		return learned, routed
	}
}
