package e2e

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// backendCase is one network manager the scenarios run against. NetworkManager and ifcfg join
// this table when their backends exist, so every scenario and the equivalence test cover them.
type backendCase struct {
	name string
	// setup installs the manager's files into the instance and starts it.
	setup func(t *testing.T, l *lab.Lab)
	// dir is where the backend's generated configuration lands in the instance (files lists it).
	dir string
	// fileOf reports whether the file rel (relative to dir) configures iface.
	fileOf func(rel, iface string) bool
	// agentLeases: the agent, not the manager, gets the secondary ENIs their DHCP lease (ifcfg:
	// it runs their dhclient). Before the agent runs only the primary ENI has its address.
	agentLeases bool
}

var backendCases = []backendCase{
	{name: "networkd", setup: setupNetworkd, dir: "/run/systemd/network",
		fileOf: func(rel, iface string) bool { return strings.Contains(rel, "-"+iface+".network") }},
	{name: "networkmanager", setup: setupNetworkManager, dir: "/run/NetworkManager/system-connections",
		fileOf: func(rel, iface string) bool { return rel == "ec2-net-utils-"+iface+".nmconnection" }},
	{name: "ifcfg", setup: setupIfcfg, dir: "/etc/sysconfig/network-scripts", agentLeases: true,
		fileOf: func(rel, iface string) bool { return strings.HasSuffix(rel, "-"+iface) }},
}

// setupNetworkd installs the package's networkd files into the instance and starts networkd.
func setupNetworkd(t *testing.T, l *lab.Lab) {
	t.Helper()
	must(t, l.SetupBackend("networkd", ".."))
}

// setupNetworkManager installs the package's NetworkManager files (conf.d drop-in, base profile)
// into the instance and starts NetworkManager; the agent's profiles are in memory, under /run.
func setupNetworkManager(t *testing.T, l *lab.Lab) {
	t.Helper()
	must(t, l.SetupBackend("networkmanager", ".."))
}

// setupIfcfg makes the instance an Amazon Linux 2 host: the dhclient script installed, the
// primary ENI up with initscripts' dhclient, no network manager.
func setupIfcfg(t *testing.T, l *lab.Lab) {
	t.Helper()
	must(t, l.SetupBackend("ifcfg", ".."))
}

// backendNamed is the backend case of a backend-specific test.
func backendNamed(t *testing.T, name string) backendCase {
	t.Helper()
	for _, bc := range backendCases {
		if bc.name == name {
			return bc
		}
	}
	t.Fatalf("no backend case %q", name)
	return backendCase{}
}

// ENIs of the scenarios. Slot N is the subnet 10.99.N.0/24; the router is 10.99.N.1.
func primaryENI() lab.ENISpec {
	return lab.ENISpec{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", DeviceNumber: 0,
		PrivateIPs: []string{"10.99.0.10", "10.99.0.20"}, Attached: true}
}

func secondENI() lab.ENISpec {
	return lab.ENISpec{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1,
		PrivateIPs: []string{"10.99.1.10", "10.99.1.20"}, Attached: true}
}

func thirdENI() lab.ENISpec {
	return lab.ENISpec{Slot: 2, Name: "ens7", MAC: "02:00:00:00:07:07", DeviceNumber: 2,
		PrivateIPs: []string{"10.99.2.10"}}
}

// env is one lab with one backend and the agent under test.
type env struct {
	t       *testing.T
	backend backendCase
	l       *lab.Lab
	nl      *netlink.Handle
	agent   *lab.Process
	// agentFrom is where the running agent's output starts in the agent's log, which every agent
	// started in the lab appends to: after a restart, only what follows is the new process's.
	agentFrom int
	reloads   *lab.CallCounter
	config    string
	enis      []lab.ENISpec
}

type envOptions struct {
	enis []lab.ENISpec
	// interfaces is added to the [interfaces] table of the agent's configuration file.
	interfaces string
	// beforeManager runs after the lab is up and before the network manager starts (to install a
	// user's own configuration, say).
	beforeManager func(*lab.Lab) error
	// imds selects where the lab's IMDS answers (default 169.254.169.254 only).
	imds lab.IMDSEndpoints
	// autoEndpoint leaves imds.endpoint out of the agent's configuration: it must find IMDS.
	autoEndpoint bool
	// refreshInterval is the agent's refresh_interval (default 1s): longer, a test shows that an
	// event, not a refresh, did the work.
	refreshInterval string
}

const waitLong = 15 * time.Second

func newEnv(t *testing.T, bc backendCase, o envOptions) *env {
	t.Helper()
	lab.RequireRoot(t)
	if len(o.enis) == 0 {
		o.enis = []lab.ENISpec{primaryENI(), secondENI()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.New(ctx, lab.Options{
		Name:          labPrefix,
		Scenario:      &scenario.Scenario{InstanceID: "i-0e2e0000000000001", MAC: o.enis[0].MAC},
		ENIs:          o.enis,
		IMDSEndpoints: o.imds,
		Logf:          t.Logf,
	})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	e := &env{t: t, backend: bc, l: l, enis: o.enis}
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpState()
		}
		if e.reloads != nil {
			e.reloads.Close()
		}
		if e.nl != nil {
			e.nl.Close()
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	e.nl, err = l.InstanceNetlink()
	must(t, err)
	if o.beforeManager != nil {
		must(t, o.beforeManager(l))
	}
	bc.setup(t, l)
	e.reloads, err = l.CountReloads(bc.name)
	must(t, err)
	e.config = lab.AgentConfig(bc.name, cmp.Or(o.refreshInterval, "1s"), o.interfaces)
	if o.autoEndpoint {
		e.config = withoutEndpoint(t, e.config)
	}
	must(t, l.WriteInstanceFile("/etc/ec2-net-utils.conf", e.config, 0o644))
	for i, spec := range o.enis {
		if spec.Attached && (i == 0 || !bc.agentLeases) {
			e.waitForLeases(spec)
		}
	}
	return e
}

// startAgent runs `ec2-net-utils daemon` inside the instance and waits for its first pass and,
// when the agent hands out the leases (ifcfg), for every attached ENI's DHCP address.
func (e *env) startAgent() {
	e.t.Helper()
	e.startDaemon()
	if e.backend.agentLeases {
		// The scenarios start from a host whose ENIs have their DHCP addresses.
		for _, spec := range e.enis {
			if spec.Attached {
				e.waitForLeases(spec)
			}
		}
	}
}

// startDaemon runs `ec2-net-utils daemon` inside the instance and waits for its first pass only:
// for a test in which an ENI must never get its lease from the agent.
func (e *env) startDaemon() {
	e.t.Helper()
	e.launchAgent()
	e.waitLog("first reconcile pass", "ready: first reconcile done")
}

// launchAgent starts the daemon and returns at once, without startAgent's waits.
func (e *env) launchAgent() {
	e.t.Helper()
	e.agentFrom = 0
	if e.agent != nil {
		e.agentFrom = len(e.agent.Log())
	}
	p, err := e.l.Start("agent", agentBin, "daemon", "--config", "/etc/ec2-net-utils.conf")
	must(e.t, err)
	e.agent = p
}

// stopAgent sends SIGTERM and expects a clean exit.
func (e *env) stopAgent() {
	e.t.Helper()
	if err := e.agent.Stop(); err != nil {
		e.t.Errorf("agent did not stop cleanly on SIGTERM: %v\n%s", err, e.agent.Log())
	}
}

func (e *env) waitLog(what, needle string) {
	e.t.Helper()
	e.waitFor(what, func() (bool, error) {
		select {
		case <-e.agent.Done():
			return false, fmt.Errorf("agent exited:\n%s", e.agent.Log())
		default:
		}
		return strings.Contains(e.agentLog(), needle), nil
	})
}

// agentLog is what the running agent wrote: after a restart, not its predecessors' lines (a
// restarted agent's "ready" must be its own).
func (e *env) agentLog() string {
	log := e.agent.Log()
	if e.agentFrom > len(log) {
		return log
	}
	return log[e.agentFrom:]
}

func (e *env) waitFor(what string, cond func() (bool, error)) {
	e.t.Helper()
	if err := e.l.WaitFor(context.Background(), what, waitLong, cond); err != nil {
		e.t.Fatal(err)
	}
}

// rule is a rule as the test compares it.
type rule struct {
	Priority, Table int
	From            string
}

func (r rule) String() string {
	return fmt.Sprintf("%d: from %s lookup %d", r.Priority, r.From, r.Table)
}

func (e *env) rules() []rule {
	e.t.Helper()
	var out []rule
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := e.nl.RuleList(fam)
		if err != nil {
			e.t.Fatalf("ip rule: %v", err)
		}
		for _, r := range rs {
			from := "all"
			if r.Src != nil {
				from = r.Src.String()
			}
			out = append(out, rule{Priority: r.Priority, Table: r.Table, From: from})
		}
	}
	return out
}

func (e *env) hasRule(want rule) bool { return slices.Contains(e.rules(), want) }

func (e *env) waitRule(want rule, present bool) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("rule %q present=%v", want, present), func() (bool, error) {
		return e.hasRule(want) == present, nil
	})
}

func (e *env) routes(table int) []string {
	e.t.Helper()
	rs, err := e.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		e.t.Fatalf("ip route show table %d: %v", table, err)
	}
	var out []string
	for _, r := range rs {
		dst := "default"
		if r.Dst != nil && !isDefault(r.Dst) {
			dst = r.Dst.String()
		}
		s := dst
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		if l, err := e.nl.LinkByIndex(r.LinkIndex); err == nil {
			s += " dev " + l.Attrs().Name
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func isDefault(n *net.IPNet) bool { ones, _ := n.Mask.Size(); return ones == 0 }

func (e *env) addresses(link string) []string {
	e.t.Helper()
	l, err := e.nl.LinkByName(link)
	if err != nil {
		return nil
	}
	as, err := e.nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		e.t.Fatalf("ip addr show %s: %v", link, err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.IPNet.String())
	}
	return out
}

func (e *env) waitForAddress(link, cidr string) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%s has %s", link, cidr), func() (bool, error) {
		return slices.Contains(e.addresses(link), cidr), nil
	})
}

func (e *env) waitNoAddress(link, cidr string) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%s no longer has %s", link, cidr), func() (bool, error) {
		return !slices.Contains(e.addresses(link), cidr), nil
	})
}

// ping reports whether one echo from src to the lab's internet address (of src's family) comes
// back.
func (e *env) ping(src string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	dst := e.l.InternetAddr()
	if strings.Contains(src, ":") {
		dst = e.l.InternetAddr6()
	}
	return e.l.Ping(ctx, src, dst)
}

func (e *env) mustPing(src string) {
	e.t.Helper()
	// Wait for the source address as `ip addr` shows it, usable: when the agent first takes an
	// ENI over from the packaged base configuration, the manager reactivates it (docs/backends.md)
	// and re-leases its DHCP address, while the plan's rules, routes and secondary addresses are
	// already there. Pinging then fails on bind, not on routing.
	if err := e.l.WaitFor(context.Background(), src+" assigned", waitLong, func() (bool, error) {
		return e.assigned(src), nil
	}); err != nil {
		e.t.Errorf("ping from %s: %v", src, err)
		return
	}
	// The first echo may race ARP on a link that just came up; three tries are still one
	// round trip when routing is right, and all fail when it is wrong.
	var err error
	for range 3 {
		if err = e.ping(src); err == nil {
			return
		}
	}
	e.t.Errorf("ping from %s to the internet address failed: %v", src, err)
}

// assigned reports whether ip is an address of a link in the instance that a socket can bind:
// not tentative (IPv6 DAD, IPv4 conflict detection) and not failed.
func (e *env) assigned(ip string) bool {
	e.t.Helper()
	as, err := e.nl.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		e.t.Fatalf("ip addr: %v", err)
	}
	return slices.ContainsFunc(as, func(a netlink.Addr) bool {
		return a.IP.String() == ip && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0
	})
}

func (e *env) mustNotPing(src string) {
	e.t.Helper()
	if err := e.ping(src); err == nil {
		e.t.Errorf("ping from %s reached the internet address, but it must be dropped (negative control)", src)
	}
}

// fileState identifies a file version: an atomic rewrite changes the inode.
type fileState struct {
	ino   uint64
	mtime time.Time
	size  int64
}

// files lists the backend's generated files in the instance (backendCase.dir).
func (e *env) files() map[string]fileState {
	e.t.Helper()
	root := e.l.InstancePath(e.backend.dir)
	out := map[string]fileState{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if info.Mode().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out[rel] = fileState{ino: info.Sys().(*syscall.Stat_t).Ino, mtime: info.ModTime(), size: info.Size()}
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("list generated files: %v", err)
	}
	return out
}

func (e *env) filesOf(iface string) []string {
	var out []string
	for name := range e.files() {
		if e.backend.fileOf(name, iface) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// foreign are rules other tenants of the rule table install (VPC CNI, nodeadm, a user); they sit
// next to ours, inside our priority band too, and even point at our tables. They must survive
// everything the agent does.
func foreign() []*netlink.Rule {
	return []*netlink.Rule{
		newRule(512, "", "10.99.50.0/24", unix.RT_TABLE_MAIN, ""), // VPC CNI: to <pod> lookup main
		newRule(1024, "", "", unix.RT_TABLE_MAIN, ""),             // VPC CNI: fwmark 0x80/0x80 lookup main
		newRule(1536, "10.99.1.77/32", "", 10001, ""),             // VPC CNI: from <pod> lookup <eni table>
		newRule(32765, "10.99.1.10/32", "", 10001, ""),            // nodeadm: from <ENI primary> lookup <eni table>
		newRule(100, "192.0.2.0/24", "", 200, ""),                 // a user's own rule
		newRule(10001, "10.99.1.77/32", "", 10001, "lo"),          // in our band, a shape we never write (iif)
		newRule(10005, "", "", unix.RT_TABLE_MAIN, ""),            // in our band, table != priority
		newRule(1400, "2001:db8::/64", "", 300, ""),               // IPv6
		// Issue #12 scenario 7: foreign IPv6 rules survive every scenario that adds them.
		newRule(1536, "fd00:99:0:1:2::/80", "", 10001, ""),     // VPC CNI (IPv6): from <pod range> lookup <eni table>
		newRule(10001, "fd00:99:0:1::77/128", "", 10001, "lo"), // in our band, a shape we never write (iif)
	}
}

func newRule(prio int, src, dst string, table int, iif string) *netlink.Rule {
	r := netlink.NewRule()
	r.Priority, r.Table, r.IifName = prio, table, iif
	if src != "" {
		_, r.Src, _ = net.ParseCIDR(src)
		if r.Src.IP.To4() == nil {
			r.Family = netlink.FAMILY_V6
		}
	}
	if dst != "" {
		_, r.Dst, _ = net.ParseCIDR(dst)
	}
	if src == "" && dst == "" && table == unix.RT_TABLE_MAIN && prio == 1024 {
		r.Mark, r.Mask = 0x80, ptr(uint32(0x80))
	}
	if r.Family == 0 {
		r.Family = netlink.FAMILY_V4
	}
	return r
}

func ptr[T any](v T) *T { return &v }

func (e *env) addForeignRules() {
	e.t.Helper()
	for _, r := range foreign() {
		if err := e.nl.RuleAdd(r); err != nil {
			e.t.Fatalf("add foreign rule %d: %v", r.Priority, err)
		}
	}
}

// ruleTuple is everything that tells one rule from another.
func ruleTuple(r netlink.Rule) string {
	return fmt.Sprintf("fam=%d prio=%d table=%d src=%v dst=%v iif=%q mark=%d", r.Family, r.Priority, r.Table, r.Src, r.Dst, r.IifName, r.Mark)
}

func (e *env) assertForeignRulesIntact() {
	e.t.Helper()
	all, err := e.nl.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		e.t.Fatalf("ip rule: %v", err)
	}
	have := map[string]bool{}
	for _, r := range all {
		have[ruleTuple(r)] = true
	}
	for _, r := range foreign() {
		if !have[ruleTuple(*r)] {
			e.t.Errorf("foreign rule %s was removed or changed", ruleTuple(*r))
		}
	}
}

func (e *env) dumpState() {
	e.t.Logf("rules: %v", e.rules())
	for _, tbl := range []int{10000, 10001, 10002, unix.RT_TABLE_MAIN} {
		e.t.Logf("table %d: %v", tbl, e.routes(tbl))
	}
	e.t.Logf("files: %v", keys(e.files()))
	if e.agent != nil {
		e.t.Logf("agent log:\n%s", e.agent.Log())
	}
	if m := e.l.Manager(); m != nil {
		log := m.Log()
		if len(log) > 6000 {
			log = log[len(log)-6000:]
		}
		e.t.Logf("%s log (tail):\n%s", e.backend.name, log)
		// Last, so that a truncated CI log still shows it: the IPv4 DHCP story of every link.
		e.t.Logf("%s DHCPv4 lines:\n%s", e.backend.name, lastLines(log, dhcp4Line, 25))
	}
	e.t.Logf("dnsmasq DHCPv4 lines:\n%s", lastLines(e.l.DHCPLog(), dhcp4Line, 25))
	links, err := e.nl.LinkList()
	if err != nil {
		e.t.Logf("ip link: %v", err)
		return
	}
	for _, l := range links {
		if name := l.Attrs().Name; name != "lo" {
			e.t.Logf("%s (%s, %s): %v", name, l.Attrs().HardwareAddr, l.Attrs().OperState, e.addresses(name))
		}
	}
}

// dhcp4Line picks the lines of a manager's or dnsmasq's log about DHCPv4: networkd's "DHCPv4
// client", NM's "dhcp4", dhclient's and dnsmasq's "DHCPDISCOVER" and friends.
func dhcp4Line(line string) bool {
	l := strings.ToLower(line)
	return strings.Contains(l, "dhcpv4") || strings.Contains(l, "dhcp4") ||
		(strings.Contains(l, "dhcp") && !strings.Contains(l, "dhcpv6") && !strings.Contains(l, "dhcp6"))
}

// lastLines returns the last n lines of log that keep selects.
func lastLines(log string, keep func(string) bool, n int) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if keep(line) {
			out = append(out, line)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
