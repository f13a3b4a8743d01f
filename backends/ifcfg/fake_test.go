package ifcfg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
)

// fakeKernel keeps links, rules, ENI-table routes and addresses in memory, with the semantics of
// netlinkx: Ensure* only add, Sync* remove only what they are told is owned, a link is found by
// index and must still have the MAC asked for.
type fakeKernel struct {
	links  map[int]core.Link
	up     map[int]bool
	rules  []core.Rule
	routes []fakeRoute
	addrs  map[int][]netip.Prefix
	// ra is the router each link learned from router advertisements.
	ra map[int]netip.Addr
	// routeErr fails EnsureRoutes for routes to these destinations.
	routeErr map[fakeRoute]error
}

type fakeRoute struct {
	link  int
	route core.Route // Gateway resolved, GatewayFromRA false
}

func newFakeKernel(links ...core.Link) *fakeKernel {
	k := &fakeKernel{links: map[int]core.Link{}, up: map[int]bool{}, addrs: map[int][]netip.Prefix{}, ra: map[int]netip.Addr{}}
	for _, l := range links {
		k.links[l.Index] = l
	}
	return k
}

// detach removes a link and, as the kernel does, everything through it.
func (k *fakeKernel) detach(index int) {
	delete(k.links, index)
	delete(k.up, index)
	delete(k.addrs, index)
	k.routes = slices.DeleteFunc(k.routes, func(r fakeRoute) bool { return r.link == index })
}

func (k *fakeKernel) link(l core.Link) (core.Link, error) {
	have, ok := k.links[l.Index]
	if !ok {
		return core.Link{}, fmt.Errorf("fake: no link with index %d", l.Index)
	}
	if l.MAC != "" && have.MAC != l.MAC {
		return core.Link{}, fmt.Errorf("fake: link %d has MAC %s, not %s", l.Index, have.MAC, l.MAC)
	}
	return have, nil
}

func (k *fakeKernel) SetUp(l core.Link) (bool, error) {
	have, err := k.link(l)
	if err != nil {
		return false, err
	}
	if k.up[have.Index] {
		return false, nil
	}
	k.up[have.Index] = true
	return true, nil
}

func ruleKeyOf(r core.Rule) string {
	return fmt.Sprintf("%d %s %d %d", r.Family, r.From.Masked(), r.Table, r.Priority)
}

func (k *fakeKernel) Rules(lo, hi int) ([]core.Rule, error) {
	var out []core.Rule
	for _, r := range k.rules {
		if r.Priority >= lo && r.Priority <= hi {
			out = append(out, r)
		}
	}
	return out, nil
}

func (k *fakeKernel) EnsureRules(want []core.Rule) ([]core.Rule, error) {
	var added []core.Rule
	for _, r := range want {
		if !slices.ContainsFunc(k.rules, func(h core.Rule) bool { return ruleKeyOf(h) == ruleKeyOf(r) }) {
			k.rules = append(k.rules, r)
			added = append(added, r)
		}
	}
	return added, nil
}

func (k *fakeKernel) DeleteRules(rules []core.Rule) error {
	for _, r := range rules {
		k.rules = slices.DeleteFunc(k.rules, func(h core.Rule) bool { return ruleKeyOf(h) == ruleKeyOf(r) })
	}
	return nil
}

func (k *fakeKernel) SyncAddresses(l core.Link, want, owned []netip.Prefix) (added, removed []netip.Prefix, err error) {
	have, err := k.link(l)
	if err != nil {
		return nil, nil, err
	}
	cur := k.addrs[have.Index]
	for _, p := range want {
		if !slices.Contains(cur, p) {
			cur = append(cur, p)
			added = append(added, p)
		}
	}
	cur = slices.DeleteFunc(cur, func(p netip.Prefix) bool {
		if slices.Contains(owned, p) && !slices.Contains(want, p) {
			removed = append(removed, p)
			return true
		}
		return false
	})
	k.addrs[have.Index] = cur
	return added, removed, nil
}

func (k *fakeKernel) RoutesInTable(table int) ([]core.Route, error) {
	var out []core.Route
	for _, r := range k.routes {
		if r.route.Table == table {
			out = append(out, r.route)
		}
	}
	return out, nil
}

func (k *fakeKernel) EnsureRoutes(l core.Link, routes []core.Route) ([]core.Route, error) {
	have, err := k.link(l)
	if err != nil {
		return nil, err
	}
	var replaced []core.Route
	var errs []error
	for _, r := range routes {
		if err := k.routeErr[fakeRoute{link: have.Index, route: core.Route{Destination: r.Destination.Masked()}}]; err != nil {
			errs = append(errs, fmt.Errorf("fake: route %s: %w", r.Destination, err))
			continue
		}
		gw := r.Gateway
		if r.GatewayFromRA {
			if gw = k.ra[have.Index]; !gw.IsValid() {
				errs = append(errs, fmt.Errorf("fake: %s: %w", have.Name, netlinkx.ErrNoRARouter))
				continue
			}
		}
		resolved := core.Route{Table: r.Table, Destination: r.Destination.Masked(), Gateway: gw}
		if slices.Contains(k.routes, fakeRoute{have.Index, resolved}) {
			continue
		}
		k.routes = slices.DeleteFunc(k.routes, func(h fakeRoute) bool {
			return h.route.Table == r.Table && h.route.Destination == resolved.Destination
		})
		k.routes = append(k.routes, fakeRoute{have.Index, resolved})
		replaced = append(replaced, r)
	}
	return replaced, errors.Join(errs...)
}

func (k *fakeKernel) DeleteRoutesInTable(table int) (int, error) {
	n := len(k.routes)
	k.routes = slices.DeleteFunc(k.routes, func(h fakeRoute) bool { return h.route.Table == table })
	return n - len(k.routes), nil
}

// dump prints the state in the words of ip(8), sorted, for golden files and failure messages.
func (k *fakeKernel) dump() string {
	name := func(i int) string {
		if l, ok := k.links[i]; ok {
			return l.Name
		}
		return fmt.Sprintf("if%d", i)
	}
	var b strings.Builder
	var lines []string
	for i, up := range k.up {
		if up {
			lines = append(lines, fmt.Sprintf("ip link set dev %s up", name(i)))
		}
	}
	for i, as := range k.addrs {
		for _, a := range as {
			lines = append(lines, fmt.Sprintf("ip addr add %s dev %s noprefixroute", a, name(i)))
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	rules := slices.Clone(k.rules)
	slices.SortStableFunc(rules, func(a, b core.Rule) int { return a.Priority - b.Priority })
	for _, r := range rules {
		fmt.Fprintf(&b, "ip -%d rule add from %s lookup %d priority %d\n", r.Family, fromText(r.From), r.Table, r.Priority)
	}
	lines = nil
	for _, r := range k.routes {
		via := ""
		if r.route.Gateway.IsValid() {
			via = " via " + r.route.Gateway.String()
		}
		lines = append(lines, fmt.Sprintf("ip route add %s%s dev %s table %d", dest(r.route.Destination), via, name(r.link), r.route.Table))
	}
	slices.Sort(lines)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// fakeDHCP records the dhclients the backend runs; Args are the real ones.
type fakeDHCP struct {
	*DHClient
	procs   map[string]Process
	nextPid int
	starts  int
	stops   int
	removed []string
	// stopErr, when set, is what the next Stop fails with.
	stopErr error
}

func newFakeDHCP() *fakeDHCP {
	return &fakeDHCP{
		DHClient: &DHClient{Script: DefaultScript, ConfDir: DefaultDHClientConfDir, PidDir: DefaultPidDir, LeaseDir: "/var/lib/dhclient"},
		procs:    map[string]Process{},
		nextPid:  1000,
	}
}

func procKey(iface string, fam core.Family) string { return fmt.Sprintf("%s -%d", iface, fam) }

func (f *fakeDHCP) Find(iface string, fam core.Family) (Process, error) {
	return f.procs[procKey(iface, fam)], nil
}

func (f *fakeDHCP) Start(_ context.Context, s ClientSpec) error {
	f.nextPid++
	f.starts++
	f.procs[procKey(s.Iface, s.Family)] = Process{Pid: f.nextPid, Args: f.Args(s), Ours: true}
	return nil
}

func (f *fakeDHCP) Stop(p Process) error {
	if err := f.stopErr; err != nil {
		f.stopErr = nil
		return err
	}
	f.stops++
	for k, q := range f.procs {
		if q.Pid == p.Pid {
			delete(f.procs, k)
		}
	}
	return nil
}

func (f *fakeDHCP) RemoveFiles(iface string, fam core.Family) ([]string, error) {
	f.removed = append(f.removed, procKey(iface, fam))
	return nil, nil
}

// adopt pretends someone else (initscripts) runs a dhclient for the interface.
func (f *fakeDHCP) adopt(iface string, fam core.Family) Process {
	f.nextPid++
	p := Process{Pid: f.nextPid, Args: []string{"-1", "-q", "-lf", "/var/lib/dhclient/dhclient--" + iface + ".lease",
		"-pf", "/var/run/dhclient-" + iface + ".pid", iface}}
	f.procs[procKey(iface, fam)] = p
	return p
}

func (f *fakeDHCP) dump() string {
	var lines []string
	for _, p := range f.procs {
		lines = append(lines, "dhclient "+strings.Join(p.Args, " "))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// failRoute makes EnsureRoutes fail for the link's routes to dst, the way the kernel refuses one.
func (k *fakeKernel) failRoute(index int, dst string, err error) {
	if k.routeErr == nil {
		k.routeErr = map[fakeRoute]error{}
	}
	k.routeErr[fakeRoute{link: index, route: core.Route{Destination: netip.MustParsePrefix(dst)}}] = err
}
