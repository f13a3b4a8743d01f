package e2e

// The fault suite of issue #14: what an independent probe did to the agent, made permanent. IMDS
// failing in four ways, configuration deleted by hand, the manager restarted, the agent killed in
// the middle of an attach, and many attach/detach cycles. Each runs against the three backends.
// Latencies are logged (t.Logf), not asserted: the bounds below only stop a hang; the figures go
// to docs/performance.md.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// restoreBound is how long a deleted rule, route or address may take to come back before the
// test gives up: generous on a loaded 2-core CI machine, far above the ~250 ms it takes.
const restoreBound = 5 * time.Second

// hostState is what the agent configures, as the kernel has it: every rule, the routes of the
// ENI tables and the IPv4 addresses of the ENIs.
type hostState struct {
	Rules  []rule
	Routes map[int][]string
	Addrs  map[string][]string
}

func (e *env) hostState() hostState {
	e.t.Helper()
	rules := e.rules()
	sort.Slice(rules, func(i, j int) bool { return rules[i].String() < rules[j].String() })
	st := hostState{Rules: rules, Routes: map[int][]string{}, Addrs: map[string][]string{}}
	for _, tbl := range []int{10000, 10001, 10002} {
		st.Routes[tbl] = e.routes(tbl)
	}
	for _, spec := range e.enis {
		as := e.addresses(spec.Name)
		slices.Sort(as)
		st.Addrs[spec.Name] = as
	}
	return st
}

func (s hostState) String() string {
	return fmt.Sprintf("rules %v\nroutes %v\naddresses %v", s.Rules, s.Routes, s.Addrs)
}

func (s hostState) equal(o hostState) bool { return s.String() == o.String() }

// settle waits until the kernel state and the generated files stay the same for half a second: the
// manager has finished what the agent's last pass asked for.
func (e *env) settle() (hostState, map[string]fileState) {
	e.t.Helper()
	st, files := e.hostState(), e.files()
	stableSince := time.Now()
	e.waitFor("the host to settle", func() (bool, error) {
		nst, nfiles := e.hostState(), e.files()
		if !nst.equal(st) || fmt.Sprint(nfiles) != fmt.Sprint(files) {
			st, files, stableSince = nst, nfiles, time.Now()
		}
		return time.Since(stableSince) >= 500*time.Millisecond, nil
	})
	return st, files
}

// sameFiles reports the files that differ between two listings (added, removed or rewritten).
func sameFiles(before, after map[string]fileState) []string {
	var diff []string
	for name, st := range before {
		if a, ok := after[name]; !ok || a != st {
			diff = append(diff, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			diff = append(diff, name)
		}
	}
	slices.Sort(diff)
	return diff
}

// IMDS down, blackholed, answering 500 or 401, each for several refreshes with both ENIs
// configured: nothing is removed or rewritten. A secondary address assigned during the outage is
// configured within about one refresh of IMDS answering again.
func TestFaultIMDSFailuresRemoveNothingAndRecoverWithinARefresh(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()
		e.startAgent()
		e.waitRule(ens6Rule20, true)
		e.waitForAddress("ens6", "10.99.1.20/32")
		e.waitFor("ens6's table routes", func() (bool, error) { return slices.Equal(e.routes(10001), ens6Table), nil })
		imds := e.l.IMDS()
		faults := []struct {
			name        string
			start, stop func()
		}{
			{"down", func() { imds.SetDown(true) }, func() { imds.SetDown(false) }},
			{"blackholed", func() { imds.SetDelay(time.Hour) }, func() { imds.SetDelay(0) }},
			{"HTTP 500", func() { imds.FailNext(1<<30, 500) }, func() { imds.FailNext(0, 0) }},
			{"HTTP 401", func() { imds.FailNext(1<<30, 401) }, func() { imds.FailNext(0, 0) }},
		}
		for i, f := range faults {
			before, files := e.settle()
			from := len(e.agentLog())
			f.start()
			// Assigned while IMDS cannot say so: configured once it answers again.
			ip := fmt.Sprintf("10.99.1.%d", 40+i)
			must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
				mac := s.Interfaces["02:00:00:00:06:06"]
				mac[core.KeyLocalIPv4s] = append(mac[core.KeyLocalIPv4s], ip)
			}))
			e.waitFor(f.name+": three refreshes IMDS does not answer", func() (bool, error) {
				return strings.Count(e.agentLog()[from:], "IMDS unreachable") >= 3, nil
			})
			if after := e.hostState(); !after.equal(before) {
				t.Errorf("IMDS %s: the kernel state changed\nbefore: %s\nafter:  %s", f.name, before, after)
			}
			if d := sameFiles(files, e.files()); len(d) > 0 {
				t.Errorf("IMDS %s: files changed: %v", f.name, d)
			}
			f.stop()
			back := time.Now()
			e.waitForAddress("ens6", ip+"/32")
			e.waitRule(rule{Priority: 10001, Table: 10001, From: ip + "/32"}, true)
			t.Logf("IMDS %s: the address assigned meanwhile configured %v after IMDS answered again (refresh 1s)",
				f.name, time.Since(back).Round(time.Millisecond))
		}
		e.mustPing("10.99.1.43")
		e.assertForeignRulesIntact()
	})
}

// A route of an ENI table, a secondary address and a source rule deleted by hand come back; the
// manager does not fight the route put back (the table holds it once, as the manager had it).
func TestFaultDeletedRouteAddressAndRuleComeBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()
		e.startAgent()
		e.waitRule(ens6Rule20, true)
		e.waitForAddress("ens6", "10.99.1.20/32")
		e.waitFor("ens6's table routes", func() (bool, error) { return slices.Equal(e.routes(10001), ens6Table), nil })
		before, _ := e.settle()
		ens6 := linkIndex(t, e, "ens6")

		kinds := []struct {
			name   string
			delete func() error
			back   func() bool
		}{
			{"route default table 10001", func() error { return e.deleteRoute(netlink.FAMILY_V4, 10001, "default", ens6) },
				func() bool { return slices.Equal(e.routes(10001), ens6Table) }},
			{"route 10.99.1.0/24 table 10001", func() error { return e.deleteRoute(netlink.FAMILY_V4, 10001, "10.99.1.0/24", ens6) },
				func() bool { return slices.Equal(e.routes(10001), ens6Table) }},
			{"address 10.99.1.20/32", func() error {
				l, err := e.nl.LinkByIndex(ens6)
				if err != nil {
					return err
				}
				return e.nl.AddrDel(l, &netlink.Addr{IPNet: mustIPNet("10.99.1.20/32")})
			}, func() bool { return slices.Contains(e.addresses("ens6"), "10.99.1.20/32") }},
			{"rule from 10.99.1.20", func() error {
				r := netlink.NewRule()
				r.Priority, r.Table, r.Src = 10001, 10001, mustIPNet("10.99.1.20/32")
				return e.nl.RuleDel(r)
			}, func() bool { return e.hasRule(ens6Rule20) }},
		}
		var all []time.Duration
		for _, k := range kinds {
			// One deletion per rule_restore_interval (1s in the lab): the latency of a restore, not
			// of the rate limit against fights (after a burst of 3).
			time.Sleep(time.Second)
			must(t, k.delete())
			deleted := time.Now()
			if k.back() {
				t.Fatalf("%s: still there right after deleting it", k.name)
			}
			if err := e.l.WaitFor(t.Context(), k.name+" restored", restoreBound, func() (bool, error) {
				return k.back(), nil
			}); err != nil {
				t.Fatal(err)
			}
			took := time.Since(deleted)
			all = append(all, took)
			t.Logf("%s restored after %v", k.name, took.Round(time.Millisecond))
		}
		slices.Sort(all)
		t.Logf("restore latency over %d deletions: median %v, max %v", len(all), all[len(all)/2].Round(time.Millisecond),
			all[len(all)-1].Round(time.Millisecond))

		// A few refreshes (one of them full) later, the manager has not removed what was put back,
		// nor added a second copy of a route (a metric of its own beside ours).
		time.Sleep(2500 * time.Millisecond)
		if after := e.hostState(); !after.equal(before) {
			t.Errorf("after the restores:\nbefore: %s\nafter:  %s", before, after)
		}
		e.mustPing("10.99.1.20")
		e.mustPing("10.99.1.10")
		if !strings.Contains(e.agentLog(), "restored what someone else removed") {
			t.Error("the agent's log does not say what it restored")
		}
		e.assertForeignRulesIntact()
	})
}

// The same for a dual-stack ENI's IPv6: the ENI table's default route via the RA-learned router
// and its subnet route, a secondary ipv6s entry and its source rule.
func TestFaultDeletedIPv6RouteAddressAndRuleComeBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{dualStackPrimary(), dualStackSecond()}})
		e.addForeignRules()
		defer e.dumpIPv6OnFailure()
		e.startAgent()
		e.waitRule(ens6Rule6Second, true)
		complete := func() bool {
			return e.raDefaultIn(10001, "ens6") && slices.Contains(e.routes(10001), "fd00:99:0:1::/64 dev ens6") &&
				e.hasAddress6("ens6", "fd00:99:0:1::20") && e.hasRule(ens6Rule6Second)
		}
		if !e.eventually("ens6's IPv6 routes, address and rule", complete) ||
			// The primary's RA default too, or it lands in the "after" snapshot only.
			!e.eventually("RA default route in table 10000", func() bool { return e.raDefaultIn(10000, "ens5") }) {
			t.FailNow()
		}
		before, _ := e.settle()
		ens6 := linkIndex(t, e, "ens6")

		kinds := []struct {
			name   string
			delete func() error
		}{
			{"IPv6 default route table 10001", func() error { return e.deleteRoute(netlink.FAMILY_V6, 10001, "default", ens6) }},
			{"route fd00:99:0:1::/64 table 10001", func() error {
				return e.deleteRoute(netlink.FAMILY_V6, 10001, "fd00:99:0:1::/64", ens6)
			}},
			{"address fd00:99:0:1::20/128", func() error {
				l, err := e.nl.LinkByIndex(ens6)
				if err != nil {
					return err
				}
				return e.nl.AddrDel(l, &netlink.Addr{IPNet: mustIPNet("fd00:99:0:1::20/128")})
			}},
			{"rule from fd00:99:0:1::20", func() error {
				r := netlink.NewRule()
				r.Family = netlink.FAMILY_V6
				r.Priority, r.Table, r.Src = 10001, 10001, mustIPNet("fd00:99:0:1::20/128")
				return e.nl.RuleDel(r)
			}},
		}
		for _, k := range kinds {
			time.Sleep(time.Second) // one deletion per rule_restore_interval, as above
			must(t, k.delete())
			deleted := time.Now()
			if complete() {
				t.Fatalf("%s: still there right after deleting it", k.name)
			}
			if err := e.l.WaitFor(t.Context(), k.name+" restored", restoreBound, func() (bool, error) {
				return complete(), nil
			}); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s restored after %v", k.name, time.Since(deleted).Round(time.Millisecond))
		}
		time.Sleep(2500 * time.Millisecond) // a full refresh: nothing removed or doubled since
		if after := e.hostState(); !after.equal(before) {
			t.Errorf("after the restores:\nbefore: %s\nafter:  %s", before, after)
		}
		e.mustPing("fd00:99:0:1::20")
		e.mustPing("10.99.1.10")
		e.assertForeignRulesIntact()
	})
}

// The network manager restarted: the rules, routes and addresses are all in place again soon,
// including a route the agent had put back (the manager adopts it: no duplicate, no removal).
func TestFaultManagerRestartRestoresTheState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		if bc.name == "ifcfg" {
			t.Skip("ifcfg has no network manager daemon to restart: initscripts run once at boot, and " +
				"the DHCP clients are the agent's own (their restart is TestIfcfg*'s business)")
		}
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()
		e.startAgent()
		e.waitRule(ens6Rule20, true)
		e.waitForAddress("ens6", "10.99.1.20/32")
		e.waitFor("ens6's table routes", func() (bool, error) { return slices.Equal(e.routes(10001), ens6Table), nil })
		before, _ := e.settle()

		// A route the agent put back, then the manager restarts over it.
		must(t, e.deleteRoute(netlink.FAMILY_V4, 10001, "default", linkIndex(t, e, "ens6")))
		e.waitFor("the default route of table 10001 restored", func() (bool, error) {
			return slices.Equal(e.routes(10001), ens6Table), nil
		})

		mainBefore := e.routes(254)
		restarted := time.Now()
		must(t, e.l.RestartManager())
		up := time.Now()
		if err := e.l.WaitFor(t.Context(), "the state after the manager's restart", waitLong, func() (bool, error) {
			return e.hostState().equal(before), nil
		}); err != nil {
			rs, _ := e.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 10001}, netlink.RT_FILTER_TABLE)
			for _, r := range rs {
				t.Logf("table 10001: %+v", r)
			}
			t.Fatalf("%v\nbefore: %s\nnow:    %s", err, before, e.hostState())
		}
		t.Logf("%s restarted in %v; state complete %v after it was up", bc.name, up.Sub(restarted).Round(time.Millisecond),
			time.Since(up).Round(time.Millisecond))
		// NetworkManager comes back running the packaged base profile's activations, with the
		// base's main-table routes (metric 1024) next to the agent's, until the agent reapplies.
		if err := e.l.WaitFor(t.Context(), "main as before the manager's restart", waitLong, func() (bool, error) {
			return slices.Equal(e.routes(254), mainBefore), nil
		}); err != nil {
			t.Errorf("%v\nbefore: %v\nnow:    %v", err, mainBefore, e.routes(254))
		}
		time.Sleep(2 * time.Second) // the manager's own reconfiguration, a few refreshes
		if after := e.hostState(); !after.equal(before) {
			t.Errorf("after the manager's restart:\nbefore: %s\nafter:  %s", before, after)
		}
		if got := e.routes(254); !slices.Equal(got, mainBefore) {
			t.Errorf("main after the manager's restart:\nbefore: %v\nafter:  %v", mainBefore, got)
		}
		e.mustPing("10.99.1.20")
		e.assertForeignRulesIntact()
	})
}

// tempFile is atomicfile's temporary name: ".<name>.<digits>.tmp".
var tempFile = regexp.MustCompile(`^\..+\.[0-9]+\.tmp$`)

// The agent killed (SIGKILL) at 20 moments around an attach or a detach: a restart leaves no
// temporary or partial file and converges, and a second restart writes and reloads nothing.
func TestFaultKillDuringAttachLeavesNoPartialFile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), secondENI(), thirdENI()}})
		e.startAgent()
		e.waitRule(ens6Rule10, true)
		attached := false
		for i := range 20 {
			if i > 0 {
				e.startDaemon()
			}
			if attached {
				must(t, e.l.Detach("ens7"))
			} else {
				must(t, e.l.Attach("ens7"))
			}
			attached = !attached
			// 0 to 190 ms after the event: before the pass, while it writes, after it.
			time.Sleep(time.Duration(i%10) * 20 * time.Millisecond)
			must(t, e.agent.Signal(syscall.SIGKILL))
			<-e.agent.Done()
		}
		if !attached {
			must(t, e.l.Attach("ens7")) // while the agent is stopped
		}
		// The kills leave a temporary file only when one lands between create and rename (3 in
		// 14 in the probe that found it), so one is planted as well: the start must sweep it,
		// and leave alone a file of the same directory that is not one of ours.
		var planted, foreign string
		if bc.name != "networkmanager" { // NM's profiles go over D-Bus: the agent writes no file
			left := 0
			for name := range e.files() {
				if tempFile.MatchString(filepath.Base(name)) {
					left++
				}
			}
			t.Logf("temporary files the 20 kills left: %d", left)
			dir := e.l.InstancePath(bc.dir)
			planted = filepath.Join(dir, ".70-ens7.network.4242.tmp")
			if bc.name == "ifcfg" {
				planted = filepath.Join(dir, ".ifcfg-ens7.4242.tmp")
			}
			foreign = filepath.Join(dir, ".user-edit.tmp")
			must(t, os.WriteFile(planted, []byte("[Match]\nName=ens7\n"), 0o644))
			must(t, os.WriteFile(foreign, []byte("a user's\n"), 0o644))
		}
		e.startAgent()
		e.waitRule(ens7Rule, true)
		e.waitFor("ens7's table routes", func() (bool, error) {
			return slices.Equal(e.routes(10002), []string{"10.99.2.0/24 dev ens7", "default via 10.99.2.1 dev ens7"}), nil
		})
		_, files := e.settle()
		for name := range files {
			if tempFile.MatchString(filepath.Base(name)) {
				t.Errorf("temporary file %s left after the restart", name)
			}
		}
		if planted != "" {
			if _, err := os.Stat(planted); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the planted temporary file %s is still there after the restart (stat: %v)", planted, err)
			}
			if _, err := os.Stat(foreign); err != nil {
				t.Errorf("the restart removed %s, which is not one of the agent's temporary files: %v", foreign, err)
			}
			must(t, os.Remove(foreign)) // the second restart below compares every file
			delete(files, ".user-edit.tmp")
		}
		for _, iface := range []string{"ens5", "ens6", "ens7"} {
			if bc.name != "networkmanager" && len(e.filesOf(iface)) == 0 { // NM's profiles live in NM
				t.Errorf("no file configures %s after the restart", iface)
			}
		}
		e.mustPing("10.99.2.10")

		// A second restart has nothing to do.
		reloads := e.reloads.N()
		e.stopAgent()
		e.startDaemon()
		time.Sleep(2500 * time.Millisecond) // two refreshes or more
		if d := sameFiles(files, e.files()); len(d) > 0 {
			t.Errorf("the second restart rewrote %v", d)
		}
		if n := e.reloads.N() - reloads; n != 0 {
			t.Errorf("the second restart caused %d reload(s), want 0", n)
		}
		if strings.Contains(e.agentLog(), "configuration changed") {
			t.Errorf("the second restart changed the configuration:\n%s", e.agentLog())
		}
	})
}

// faultCycles is the number of attach/detach cycles per backend: the issue's hundred in `make
// test` (about 15-20 s per backend); E2E_FAULT_CYCLES sets another number, e.g. 850 as in the
// probe that asked for the test.
func faultCycles(t *testing.T) int {
	if s := os.Getenv("E2E_FAULT_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("E2E_FAULT_CYCLES=%q: want a positive number", s)
		}
		return n
	}
	return 100
}

// resourcesLine is the daemon's debug line at every full pass.
var resourcesLine = regexp.MustCompile(`resources: goroutines=(\d+) fds=(\d+) threads=(\d+)`)

type agentResources struct{ goroutines, fds, threads int }

// resourcesAfter is every resources line the running agent logged after offset from.
func (e *env) resourcesAfter(from int) []agentResources {
	var out []agentResources
	log := e.agentLog()
	if from > len(log) {
		from = len(log)
	}
	for _, m := range resourcesLine.FindAllStringSubmatch(log[from:], -1) {
		g, _ := strconv.Atoi(m[1])
		f, _ := strconv.Atoi(m[2])
		th, _ := strconv.Atoi(m[3])
		out = append(out, agentResources{g, f, th})
	}
	return out
}

// instanceProcesses lists the command names of the processes in the instance's network
// namespace (the manager, DHCP clients, the agent), sorted.
func (e *env) instanceProcesses() []string {
	e.t.Helper()
	var st unix.Stat_t
	must(e.t, unix.Fstat(int(e.l.InstanceNS()), &st))
	entries, err := os.ReadDir("/proc")
	must(e.t, err)
	var out []string
	for _, ent := range entries {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		var ns unix.Stat_t
		if unix.Stat(filepath.Join("/proc", ent.Name(), "ns", "net"), &ns) != nil || ns.Ino != st.Ino || ns.Dev != st.Dev {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "comm"))
		if err != nil {
			continue // exited meanwhile
		}
		out = append(out, strings.TrimSpace(string(comm)))
	}
	slices.Sort(out)
	return out
}

// Many attach/detach cycles of ens7 leak nothing: the files, rules, routes and the processes of
// the instance are those of before, and the agent's goroutines and fds (its debug resources
// line) come back to what they were.
func TestFaultAttachDetachCyclesLeakNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), secondENI(), thirdENI()}})
		// Every refresh is a full pass, so the resources line comes every second.
		e.config = strings.Replace(e.config, "[daemon]\n", "[daemon]\nfull_refresh_every = 1\n", 1)
		must(t, e.l.WriteInstanceFile("/etc/ec2-net-utils.conf", e.config, 0o644))
		e.startAgent()
		e.waitRule(ens6Rule10, true)
		cycle := func() {
			must(t, e.l.Attach("ens7"))
			e.waitRule(ens7Rule, true)
			must(t, e.l.Detach("ens7"))
			e.waitRule(ens7Rule, false)
			e.waitFor("ens7's files removed", func() (bool, error) { return len(e.filesOf("ens7")) == 0, nil })
		}
		cycle() // a first one creates what lives on (connections, caches)
		state, files := e.settle()
		procs := e.instanceProcesses()
		from := len(e.agentLog())
		// The baseline is the most of a few quiet full passes: an HTTP connection's goroutine to
		// IMDS comes and goes (16 or 17 goroutines from one second to the next); a leak of even
		// one goroutine per cycle is far above that.
		e.waitFor("four resources lines", func() (bool, error) { return len(e.resourcesAfter(from)) >= 4, nil })
		var base agentResources
		for _, r := range e.resourcesAfter(from)[1:] {
			base.goroutines, base.fds, base.threads = max(base.goroutines, r.goroutines), max(base.fds, r.fds), max(base.threads, r.threads)
		}

		n := faultCycles(t)
		start := time.Now()
		for range n {
			cycle()
		}
		took := time.Since(start)
		after, afterFiles := e.settle()
		if !after.equal(state) {
			t.Errorf("after %d cycles:\nbefore: %s\nafter:  %s", n, state, after)
		}
		if got, want := keys(afterFiles), keys(files); !slices.Equal(got, want) {
			t.Errorf("files after %d cycles %v, before %v", n, got, want)
		}
		e.waitFor("the instance's processes as before", func() (bool, error) {
			return slices.Equal(e.instanceProcesses(), procs), nil
		})
		// The counts come back to the baseline (a goroutine of an HTTP connection may come and go).
		from = len(e.agentLog())
		var last agentResources
		e.waitFor(fmt.Sprintf("the agent's resources back to %+v", base), func() (bool, error) {
			rs := e.resourcesAfter(from)
			if len(rs) == 0 {
				return false, nil
			}
			last = rs[len(rs)-1]
			// Threads are logged, not compared: the Go runtime keeps the threads it once needed.
			return last.goroutines <= base.goroutines && last.fds <= base.fds, nil
		})
		t.Logf("%d attach/detach cycles in %v (%v each); agent before %+v, after %+v; %d instance processes",
			n, took.Round(time.Millisecond), (took / time.Duration(n)).Round(time.Millisecond), base, last, len(procs))
	})
}

// deleteRoute deletes the route to dst ("default" or a prefix) of the link in table as the kernel
// has it (ip route del <dst> table <table> dev <link>), whatever its scope, metric or protocol.
func (e *env) deleteRoute(family, table int, dst string, link int) error {
	rs, err := e.nl.RouteListFiltered(family, &netlink.Route{Table: table, LinkIndex: link},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF)
	if err != nil {
		return err
	}
	for _, r := range rs {
		d := "default"
		if r.Dst != nil && !isDefault(r.Dst) {
			d = r.Dst.String()
		}
		if d == dst {
			return e.nl.RouteDel(&r)
		}
	}
	return fmt.Errorf("no route %s in table %d", dst, table)
}

// An ENI detached while the agent is stopped: the restarted agent has no memory of it and no
// event, yet nothing of it remains (networkd used to keep its source rule: its files go without a
// reload, so networkd still holds the detached ENI's configuration).
func TestFaultENIDetachedWhileTheAgentIsStoppedLeavesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), secondENI(), thirdENI()}})
		e.addForeignRules()
		e.startAgent()
		must(t, e.l.Attach("ens7"))
		e.waitRule(ens7Rule, true)
		e.waitForAddress("ens7", "10.99.2.10/24")
		e.stopAgent()
		must(t, e.l.Detach("ens7"))
		e.startDaemon()
		e.waitRule(ens7Rule, false)
		e.waitFor("ens7's files removed", func() (bool, error) { return len(e.filesOf("ens7")) == 0, nil })
		if rs := e.routes(10002); len(rs) != 0 {
			t.Errorf("table 10002 still has %v", rs)
		}
		e.waitRule(ens6Rule10, true)
		e.mustPing("10.99.1.10")
		e.assertForeignRulesIntact()
	})
}
