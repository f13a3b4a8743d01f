package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// bench measures the agent in the lab at a given size (--enis × --ips + --prefixes, issue #16):
// boot → everything routed, hot attach → routed, one secondary IP → applied, a no-change
// refresh, a deleted rule → restored, and the idle daemon's CPU and RSS. Two labs: one with a 1 s
// refresh and debug logging for the active measures, one as shipped (10 s, info) for boot and idle.
func bench(ctx context.Context, o options) error {
	// Labs of an earlier benchmark that crashed (their creator is gone; live labs are left alone).
	if err := lab.Sweep(benchLabPrefix); err != nil {
		fmt.Fprintf(o.out, "sweep %s labs: %v\n", benchLabPrefix, err)
	}
	sc := lab.Scale{ENIs: o.enis, IPs: o.ips, Prefixes: o.prefixes, Spares: 1}
	specs, err := lab.ScaleENIs(sc)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.out, "ec2-net-utils lab benchmark, %s backend, %d ENIs × %d IPv4 + %d prefixes\n\n",
		o.backend, o.enis, o.ips, o.prefixes)
	res := benchResult{backend: o.backend, enis: o.enis, ips: o.ips, prefixes: o.prefixes}
	if err := benchActive(ctx, o, specs, &res); err != nil {
		return err
	}
	if err := benchBootAndIdle(ctx, o, specs, &res); err != nil {
		return err
	}
	fmt.Fprintf(o.out, "\n%s\n", res)
	return nil
}

// benchLabPrefix names the benchmark's labs (<prefix>, <prefix>idle), so a sweep finds only its own.
const benchLabPrefix = "scale"

// benchResult is the one-line summary docs/performance.md is compiled from.
type benchResult struct {
	backend                   string
	enis, ips, prefixes       int
	bootWall, bootCPU         time.Duration
	bootReloads, bootRequests int64
	attach                    []time.Duration
	ipWall, ipCPU             time.Duration
	ipFiles                   int
	ipReloads                 int64
	refreshReqs, refreshCPU   float64 // per refresh; CPU in ms
	idlePerHour               time.Duration
	rssKB                     int
}

func (r benchResult) String() string {
	a := "-"
	if len(r.attach) > 0 {
		a = strings.ReplaceAll(spread(r.attach), " ms", "")
	}
	return fmt.Sprintf("RESULT backend=%s enis=%d ips=%d prefixes=%d boot_ms=%.0f boot_cpu_ms=%.1f boot_reloads=%d boot_imds=%d "+
		"attach_ms=%q ip_ms=%.0f ip_cpu_ms=%.1f ip_files=%d ip_reloads=%d refresh_imds=%.1f refresh_imds_per_eni=%.2f "+
		"refresh_cpu_ms=%.2f idle_cpu_s_per_h=%.2f rss_kb=%d",
		r.backend, r.enis, r.ips, r.prefixes, msf(r.bootWall), msf(r.bootCPU), r.bootReloads, r.bootRequests,
		a, msf(r.ipWall), msf(r.ipCPU), r.ipFiles, r.ipReloads, r.refreshReqs, r.refreshReqs/float64(r.enis),
		r.refreshCPU, r.idlePerHour.Seconds(), r.rssKB)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// startScaled builds the lab with specs (the attached ones attached), installs the backend, waits
// for the manager's own DHCP on every ENI it leases, and starts the agent. before runs just
// before the agent starts (counters to reset).
func startScaled(ctx context.Context, o options, name, refresh string, specs []lab.ENISpec, before func(*session) error) (*session, error) {
	logf := func(string, ...any) {}
	if o.verbose {
		logf = func(format string, args ...any) { fmt.Fprintf(o.out, "  lab: "+format+"\n", args...) }
	}
	l, err := lab.New(ctx, lab.Options{
		Name:     name,
		Scenario: &scenario.Scenario{InstanceID: "i-0de30000000000001", MAC: specs[0].MAC},
		ENIs:     specs,
		Logf:     logf,
	})
	if err != nil {
		return nil, err
	}
	s := &session{o: o, l: l}
	fail := func(err error) (*session, error) { s.close(); return nil, err }
	start := time.Now()
	if err := l.SetupBackend(o.backend, o.repo); err != nil {
		return fail(err)
	}
	config := lab.AgentConfig(o.backend, refresh, "")
	if o.quiet {
		config = strings.Replace(config, `log_level = "debug"`, `log_level = "info"`, 1)
	}
	if err := l.WriteInstanceFile("/etc/ec2-net-utils.conf", config, 0o644); err != nil {
		return fail(err)
	}
	lb, err := lookupBackend(o.backend)
	if err != nil {
		return fail(err)
	}
	nl, err := l.InstanceNetlink()
	if err != nil {
		return fail(err)
	}
	defer nl.Close()
	var leased []lab.ENISpec
	for i, e := range specs {
		if e.Attached && (i == 0 || !lb.agentLeases) {
			leased = append(leased, e)
		}
	}
	if err := l.WaitFor(ctx, "the manager's DHCP on every ENI", 120*time.Second, func() (bool, error) {
		return !slices.ContainsFunc(leased, func(e lab.ENISpec) bool { return !hasAddr(nl, e.Name, e.PrivateIPs[0]+"/24") }), nil
	}); err != nil {
		return fail(err)
	}
	fmt.Fprintf(o.out, "[%s lab] %s up and DHCP on %d ENIs after %v\n", name, lb.manager, len(leased), time.Since(start).Round(time.Millisecond))
	if before != nil {
		if err := before(s); err != nil {
			return fail(err)
		}
	}
	p, err := l.Start("agent", o.agent, "daemon", "--config", "/etc/ec2-net-utils.conf")
	if err != nil {
		return fail(err)
	}
	s.agent = p
	return s, nil
}

// eniRouted reports whether the ENI's source rules (every address and prefix, not for the
// primary, which has none by default) and its table's default route are in the kernel, given one
// dump of each.
func eniRouted(e lab.ENISpec, rules []netlink.Rule, routes []netlink.Route) bool {
	table := core.TableFor(e.NetworkCard, e.DeviceNumber)
	if !slices.ContainsFunc(routes, func(r netlink.Route) bool {
		return r.Table == table && r.Gw != nil && (r.Dst == nil || r.Dst.IP.IsUnspecified())
	}) {
		return false
	}
	if e.DeviceNumber == 0 && e.NetworkCard == 0 {
		return true
	}
	want := len(e.PrivateIPs) + len(e.IPv4Prefixes)
	n := 0
	for _, r := range rules {
		if r.Priority == table && r.Table == table && r.Src != nil {
			n++
		}
	}
	return n >= want
}

func dumps(nl *netlink.Handle) ([]netlink.Rule, []netlink.Route, error) {
	rules, err := nl.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return nil, nil, err
	}
	// Table 0 with the table filter: every table.
	routes, err := nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{}, netlink.RT_FILTER_TABLE)
	return rules, routes, err
}

func allRouted(nl *netlink.Handle, specs []lab.ENISpec) bool {
	rules, routes, err := dumps(nl)
	if err != nil {
		return false
	}
	for _, e := range specs {
		if e.Attached && !eniRouted(e, rules, routes) {
			return false
		}
	}
	return true
}

// benchBootAndIdle starts the agent as shipped (refresh 10 s, log level info) on a host whose
// manager already leased every ENI, times boot → every rule and ENI-table route in the kernel,
// then watches the idle daemon.
func benchBootAndIdle(ctx context.Context, o options, specs []lab.ENISpec, res *benchResult) error {
	o.quiet = true
	var reloads *lab.CallCounter
	s, err := startScaled(ctx, o, benchLabPrefix+"idle", "10s", specs, func(s *session) error {
		var err error
		reloads, err = s.l.CountReloads(o.backend)
		s.l.IMDS().ResetCounters()
		return err
	})
	if err != nil {
		return err
	}
	defer s.close()
	defer reloads.Close()
	start := time.Now()
	nl, err := s.l.InstanceNetlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	for !allRouted(nl, specs) {
		if time.Since(start) > 60*time.Second {
			return fmt.Errorf("boot: not every ENI routed after 60s\n%s", s.agent.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.bootWall = time.Since(start)
	pid := s.agent.Pid()
	res.bootCPU, _ = cpuTime(pid)
	res.bootReloads, res.bootRequests = reloads.N(), s.l.IMDS().Requests()
	fmt.Fprintf(o.out, "boot -> every rule and ENI-table route in the kernel (agent started after the manager's DHCP): %s, agent CPU %s, %d reloads, %d IMDS requests\n",
		ms(res.bootWall), ms(res.bootCPU), res.bootReloads, res.bootRequests)

	// Let the start pass and its follow-ups finish before watching.
	if err := s.waitLog("ready: first reconcile done"); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	cpu0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	user0, sys0 := userSys(pid)
	dhclients := s.agentDHClients()
	var dh0 time.Duration
	for _, p := range dhclients {
		c, _ := cpuTime(p)
		dh0 += c
	}
	fmt.Fprintf(o.out, "idle daemon: watching for %v (refresh_interval 10s, log_level info, %d ENIs)...\n", o.idle, o.enis)
	select {
	case <-time.After(o.idle):
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu1, err := cpuTime(pid)
	if err != nil {
		return err
	}
	if res.rssKB, err = rssKB(pid); err != nil {
		return err
	}
	cpu := cpu1 - cpu0
	res.idlePerHour = time.Duration(float64(cpu) * float64(time.Hour) / float64(o.idle))
	user1, sys1 := userSys(pid)
	fmt.Fprintf(o.out, "idle daemon: %v CPU in %v (%v per hour; user %v, kernel %v by 10 ms ticks), RSS %d kB, child processes %d\n",
		cpu.Round(time.Microsecond), o.idle, res.idlePerHour.Round(time.Millisecond), user1-user0, sys1-sys0, res.rssKB, children(pid))
	if len(dhclients) > 0 {
		var dh1 time.Duration
		rssSum := 0
		for _, p := range dhclients {
			c, _ := cpuTime(p)
			dh1 += c
			r, _ := rssKB(p)
			rssSum += r
		}
		fmt.Fprintf(o.out, "the agent's dhclients: %d processes, %v CPU in %v, RSS %d kB together\n",
			len(dhclients), (dh1 - dh0).Round(time.Microsecond), o.idle, rssSum)
	}
	return nil
}

// benchActive runs the lab with a 1 s refresh: hot attaches of the spare ENI, one secondary IP
// added, deleted rules, no-change refreshes.
func benchActive(ctx context.Context, o options, specs []lab.ENISpec, res *benchResult) error {
	s, err := startScaled(ctx, o, benchLabPrefix, "1s", specs, nil)
	if err != nil {
		return err
	}
	defer s.close()
	nl, err := s.l.InstanceNetlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	if err := s.waitLog("ready: first reconcile done"); err != nil {
		return err
	}
	if err := s.l.WaitFor(ctx, "every ENI routed", 60*time.Second, func() (bool, error) { return allRouted(nl, specs), nil }); err != nil {
		return fmt.Errorf("%w\n%s", err, s.agent.Log())
	}
	time.Sleep(time.Second)
	if err := benchAttach(s, nl, specs[len(specs)-1], res); err != nil {
		return err
	}
	if o.enis > 1 {
		if err := benchIPChange(ctx, s, nl, specs[1], res); err != nil {
			return err
		}
		if err := benchRuleRestore(s, nl, o.deletions); err != nil {
			return err
		}
	}
	return benchRefresh(ctx, s, res)
}

// benchAttach hot-attaches spare o.attaches times: attach → its rules and table's default route.
func benchAttach(s *session, nl *netlink.Handle, spare lab.ENISpec, res *benchResult) error {
	lb, err := lookupBackend(s.o.backend)
	if err != nil {
		return err
	}
	pid := s.agent.Pid()
	table := core.TableFor(spare.NetworkCard, spare.DeviceNumber)
	var cpus, leased []time.Duration
	var reqs []int64
	for i := 0; i < s.o.attaches; i++ {
		cpu0, _ := cpuTime(pid)
		r0 := s.l.IMDS().Requests()
		start := time.Now()
		if err := s.l.Attach(spare.Name); err != nil {
			return err
		}
		for {
			rules, err := nl.RuleList(netlink.FAMILY_V4)
			if err == nil {
				routes, rerr := nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
				if rerr == nil && eniRouted(spare, rules, routes) {
					break
				}
			}
			if time.Since(start) > 30*time.Second {
				return fmt.Errorf("attach %d: %s not routed after 30s\n%s", i+1, spare.Name, s.agent.Log())
			}
			time.Sleep(5 * time.Millisecond)
		}
		res.attach = append(res.attach, time.Since(start))
		cpu1, _ := cpuTime(pid)
		cpus = append(cpus, cpu1-cpu0)
		reqs = append(reqs, s.l.IMDS().Requests()-r0)
		if lb.agentLeases {
			for !hasAddr(nl, spare.Name, spare.PrivateIPs[0]+"/24") {
				if time.Since(start) > 30*time.Second {
					return fmt.Errorf("attach %d: %s got no DHCP address after 30s\n%s", i+1, spare.Name, s.agent.Log())
				}
				time.Sleep(5 * time.Millisecond)
			}
			leased = append(leased, time.Since(start))
		}
		if err := s.l.Detach(spare.Name); err != nil {
			return err
		}
		if err := s.waitRule(table, spare.PrivateIPs[0], false); err != nil {
			return fmt.Errorf("detach %d: %w\n%s", i+1, err, s.agent.Log())
		}
		time.Sleep(500 * time.Millisecond) // let the detach pass finish before the next attach
	}
	if len(res.attach) == 0 {
		return nil
	}
	slices.Sort(reqs)
	fmt.Fprintf(s.o.out, "hot attach -> routed (its %d rules + ENI-table default route), %d attaches: %s; agent CPU attach -> routed %s; IMDS requests median %d\n",
		len(spare.PrivateIPs)+len(spare.IPv4Prefixes), len(res.attach), spread(res.attach), spread(cpus), reqs[len(reqs)/2])
	if len(leased) > 0 {
		fmt.Fprintf(s.o.out, "hot attach -> routed and DHCP address (the agent's dhclient): %s\n", spread(leased))
	}
	return nil
}

var changedLine = regexp.MustCompile(`configuration changed.*?written="?([^"=]*?)"? removed=.*?reloads=(\d+)`)

// benchIPChange adds one secondary IP to e in IMDS and times it until its rule is in the kernel
// and the agent logged the pass that applied it (files written, reloads).
func benchIPChange(ctx context.Context, s *session, nl *netlink.Handle, e lab.ENISpec, res *benchResult) error {
	ip := lab.ScaleIP(e.Slot, len(e.PrivateIPs))
	table := core.TableFor(e.NetworkCard, e.DeviceNumber)
	pid := s.agent.Pid()
	logBefore := len(s.agent.Log())
	reloads, err := s.l.CountReloads(s.o.backend)
	if err != nil {
		return err
	}
	defer reloads.Close()
	cpu0, _ := cpuTime(pid)
	start := time.Now()
	if err := s.l.UpdateIMDS(func(sc *scenario.Scenario) {
		keys := sc.Interfaces[e.MAC]
		keys[core.KeyLocalIPv4s] = append(keys[core.KeyLocalIPv4s], ip)
	}); err != nil {
		return err
	}
	var line []string
	if err := s.l.WaitFor(ctx, "secondary IP "+ip+" applied", 30*time.Second, func() (bool, error) {
		line = changedLine.FindStringSubmatch(s.agent.Log()[logBefore:])
		return line != nil && hasSourceRule(nl, table, ip), nil
	}); err != nil {
		return fmt.Errorf("%w\n%s", err, s.agent.Log())
	}
	res.ipWall = time.Since(start)
	cpu1, _ := cpuTime(pid)
	res.ipCPU = cpu1 - cpu0
	time.Sleep(500 * time.Millisecond) // reloads are counted from the bus, after the fact
	res.ipReloads = reloads.N()
	// Written lists files by path (networkd, ifcfg), NM profiles by name, and ifcfg's kernel
	// changes as "<iface>: rule …" entries: count only the first two.
	for _, f := range strings.Fields(line[1]) {
		if strings.HasPrefix(f, "/") || strings.HasPrefix(f, "ec2-net-utils-") {
			res.ipFiles++
		}
	}
	fmt.Fprintf(s.o.out, "one secondary IP added on %s -> rule in the kernel: %s (refresh_interval 1s; the refresh comes up to 1s after the change), agent CPU %s, files written %d (%s), reloads %d\n",
		e.Name, ms(res.ipWall), ms(res.ipCPU), res.ipFiles, strings.TrimSpace(line[1]), res.ipReloads)
	return nil
}

// benchRefresh counts what no-change refreshes cost: IMDS requests, reloads, agent CPU.
func benchRefresh(ctx context.Context, s *session, res *benchResult) error {
	reloads, err := s.l.CountReloads(s.o.backend)
	if err != nil {
		return err
	}
	defer reloads.Close()
	time.Sleep(2500 * time.Millisecond) // past the restores and passes of the measures above
	const done = "reconciled: reason=refresh"
	before := strings.Count(s.agent.Log(), done)
	s.l.IMDS().ResetCounters()
	r0 := reloads.N()
	cpu0, _ := cpuTime(s.agent.Pid())
	if err := s.l.WaitFor(ctx, "refreshes", time.Duration(s.o.refreshes+5)*time.Second, func() (bool, error) {
		return strings.Count(s.agent.Log(), done)-before >= s.o.refreshes, nil
	}); err != nil {
		return err
	}
	cpu1, _ := cpuTime(s.agent.Pid())
	n := strings.Count(s.agent.Log(), done) - before
	reqs := s.l.IMDS().Requests()
	res.refreshReqs = float64(reqs) / float64(n)
	res.refreshCPU = msf(cpu1-cpu0) / float64(n)
	fmt.Fprintf(s.o.out, "no-change refresh, %d ENIs, %d refreshes: %.1f IMDS requests per refresh (%.2f per ENI), %.2f reloads per refresh, agent CPU %.2f ms per refresh (%.3f ms per ENI; debug logging)\n",
		s.o.enis, n, res.refreshReqs, res.refreshReqs/float64(s.o.enis), float64(reloads.N()-r0)/float64(n), res.refreshCPU, res.refreshCPU/float64(s.o.enis))
	if a := lastAllocs(s.agent.Log()); a != "" {
		fmt.Fprintf(s.o.out, "no-change refresh allocations (the agent's debug line): %s\n", a)
	}
	return nil
}

var allocsLine = regexp.MustCompile(`pass cost: .*reason=refresh .*`)

// lastAllocs is the agent's last debug line on a refresh's allocations, if it logs one.
func lastAllocs(log string) string {
	m := allocsLine.FindAllString(log, -1)
	if len(m) == 0 {
		return ""
	}
	return strings.TrimSpace(m[len(m)-1])
}

// userSys is the process's user and kernel CPU time from /proc/<pid>/stat (10 ms ticks): coarse,
// but it tells the agent's own code from the kernel work its syscalls and packets cause.
func userSys(pid int) (user, sys time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// Fields after the command name, which is in parentheses and may contain spaces.
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, 0
	}
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return time.Duration(u) * 10 * time.Millisecond, time.Duration(s) * 10 * time.Millisecond
}
