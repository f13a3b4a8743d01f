package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// Issue #11: EC2's timing (the link before IMDS, keys one by one, outages and 404s on a known
// ENI) and multi-card instances, end to end. The lab's refresh interval is 1 s and its
// propagation_timeout 5 s (lab.AgentConfig).

// routedBound is how long after IMDS completes (or comes back) an ENI may take to be routed: a
// generous bound around "about one refresh interval", far below the full refresh (30 intervals)
// that used to be the only thing finding it.
const routedBound = 10 * time.Second

// altnames lists a link's alternative names.
func (e *env) altnames(link string) []string {
	l, err := e.nl.LinkByName(link)
	if err != nil {
		return nil
	}
	return l.Attrs().AltNames
}

// waitAltnames waits until link carries every name in want (amazon-ec2-net-utils 2.x's
// eni-<id> and device-number-D.C).
func (e *env) waitAltnames(link string, want ...string) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%s has altnames %v", link, want), func() (bool, error) {
		have := e.altnames(link)
		for _, w := range want {
			if !slices.Contains(have, w) {
				return false, nil
			}
		}
		return true, nil
	})
}

// lagProbe is the kernel and file state of one ENI being attached, sampled while IMDS lags.
type lagProbe struct {
	iface string
	table int
	src   string // the ENI's primary address, /32
}

type lagSample struct {
	files  []string
	rule   bool
	routes []string
	addr   bool
}

func (p lagProbe) sample(e *env) lagSample {
	return lagSample{
		files:  e.filesOf(p.iface),
		rule:   e.hasRule(rule{Priority: p.table, Table: p.table, From: p.src + "/32"}),
		routes: e.routes(p.table),
		addr:   slices.Contains(e.addresses(p.iface), p.src+"/24"),
	}
}

// routed: the source rule and the table's default route are in the kernel, and the link has its
// address, which is what a packet from it needs.
func (s lagSample) routed(p lagProbe) bool {
	return s.rule && s.addr && slices.ContainsFunc(s.routes, func(r string) bool {
		return strings.HasPrefix(r, "default via ") && strings.HasSuffix(r, " dev "+p.iface)
	})
}

// touched reports whether any of the ENI's configuration exists.
func (s lagSample) touched() bool { return len(s.files) > 0 || s.rule || len(s.routes) > 0 }

// lagCost is what the agent asked IMDS for while an ENI lagged: the requests (all of the
// agent's, its refreshes included) from the link's attach to IMDS listing the MAC, and from the
// listing to routed.
type lagCost struct {
	unlisted, pending         time.Duration
	unlistedReqs, pendingReqs int64
}

// watchLaggingAttach attaches probe.iface with script and samples its state every 25 ms until
// it is routed or routedBound after the last step. It fails the test if the ENI was touched
// before IMDS had its last required key (a file with a guessed device number, a rule pointing at
// an empty table), or if its files do not name its table. It returns the time from the last
// required key to routed, or 0 when it was not routed, and the IMDS requests on the way.
func (e *env) watchLaggingAttach(probe lagProbe, script lab.Script, lastRequired string) (time.Duration, lagCost) {
	e.t.Helper()
	type result struct {
		played lab.Played
		err    error
	}
	done := make(chan result, 1)
	go func() {
		p, err := e.l.AttachLagging(context.Background(), probe.iface, script)
		done <- result{p, err}
	}()

	type seen struct {
		at   time.Time
		s    lagSample
		reqs int64 // IMDS requests so far
	}
	var samples []seen
	var played *lab.Played
	var routedAt time.Time
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for routedAt.IsZero() {
		s := probe.sample(e)
		now := time.Now() // after the sample: what it saw existed by then
		samples = append(samples, seen{now, s, e.l.IMDS().Requests()})
		if s.routed(probe) {
			routedAt = now
			break
		}
		if played != nil && now.Sub(played.Last()) > routedBound {
			break
		}
		select {
		case r := <-done:
			if r.err != nil {
				e.t.Fatalf("attach %s with IMDS lagging: %v", probe.iface, r.err)
			}
			played = &r.played
		case <-tick.C:
		}
	}
	if played == nil {
		r := <-done
		if r.err != nil {
			e.t.Fatalf("attach %s with IMDS lagging: %v", probe.iface, r.err)
		}
		played = &r.played
	}

	var keyAt, listedAt time.Time
	for i, st := range played.Steps {
		e.t.Logf("IMDS step %s at %s", st, played.At[i].Format("15:04:05.000"))
		if st.Key == lastRequired && st.Action == fakeimds.Publish {
			keyAt = played.At[i]
		}
		if st.Key == "" && st.Action == fakeimds.Publish && listedAt.IsZero() {
			listedAt = played.At[i]
		}
	}
	if keyAt.IsZero() {
		e.t.Fatalf("the script never published %s", lastRequired)
	}
	tableName := fmt.Sprint(probe.table)
	for _, sm := range samples {
		if sm.at.Before(keyAt) && sm.s.touched() {
			e.t.Errorf("%s configured before IMDS had %s (a guess): %+v at %s", probe.iface, lastRequired, sm.s, sm.at.Format("15:04:05.000"))
		}
	}
	if routedAt.IsZero() {
		e.t.Errorf("%s not routed %v after the last IMDS step; last state %+v", probe.iface, routedBound, samples[len(samples)-1].s)
		return 0, lagCost{}
	}
	// The table sits in one of the ENI's files (networkd: a drop-in; ifcfg: rule- and route-).
	var all strings.Builder
	for _, f := range e.filesOf(probe.iface) {
		body, err := e.l.ReadInstanceFile(e.backend.dir + "/" + f)
		if err != nil {
			e.t.Errorf("read %s: %v", f, err)
		}
		fmt.Fprintf(&all, "%s:\n%s\n", f, body)
	}
	if !strings.Contains(all.String(), tableName) {
		e.t.Errorf("%s's files do not name table %d (a guessed device number?):\n%s", probe.iface, probe.table, all.String())
	}
	var cost lagCost
	first, last := samples[0], samples[len(samples)-1]
	if i := slices.IndexFunc(samples, func(sm seen) bool { return !sm.at.Before(listedAt) }); i > 0 && !listedAt.IsZero() {
		cost = lagCost{unlisted: samples[i].at.Sub(first.at), pending: last.at.Sub(samples[i].at),
			unlistedReqs: samples[i].reqs - first.reqs, pendingReqs: last.reqs - samples[i].reqs}
	}
	return routedAt.Sub(keyAt), cost
}

func lagENI() lab.ENISpec {
	return lab.ENISpec{Slot: 2, Name: "ens7", MAC: "02:00:00:00:07:07", DeviceNumber: 2, PrivateIPs: []string{"10.99.2.10"}}
}

// Scenario 1: the link first, the listing 3 s later, the keys over a further 2 s. The agent
// must route the ENI soon after the last required key and configure nothing before it. Three
// fresh ENIs per backend, one after the other, for the figures.
func TestLaggingAttachIsRoutedSoonAfterIMDSCompletesAndNeverHalfConfigured(t *testing.T) {
	var all []time.Duration
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		late := []lab.ENISpec{lagENI(),
			{Slot: 3, Name: "ens8", MAC: "02:00:00:00:08:08", DeviceNumber: 3, PrivateIPs: []string{"10.99.3.10"}},
			{Slot: 4, Name: "ens9", MAC: "02:00:00:00:09:09", DeviceNumber: 4, PrivateIPs: []string{"10.99.4.10"}},
		}
		e := newEnv(t, bc, envOptions{enis: append([]lab.ENISpec{primaryENI(), secondENI()}, late...)})
		e.startAgent()
		e.waitRule(ens6Rule10, true)
		// What the agent asks IMDS for with nothing to look for (its refreshes), to tell the
		// looks' cost apart.
		const idle = 3 * time.Second
		before := e.l.IMDS().Requests()
		time.Sleep(idle)
		idleRate := float64(e.l.IMDS().Requests()-before) / idle.Seconds()

		// Six keys 2 s/6 apart; subnet-ipv4-cidr-block is the last one a route needs.
		script := lab.Lagging(3*time.Second, 2*time.Second/6)
		for _, spec := range late {
			probe := lagProbe{iface: spec.Name, table: 10000 + spec.DeviceNumber, src: spec.PrivateIPs[0]}
			d, cost := e.watchLaggingAttach(probe, script, core.KeySubnetIPv4CIDR)
			if t.Failed() {
				return
			}
			rate := func(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() }
			t.Logf("%s: last required IMDS key -> routed: %v; IMDS requests/s idle %.1f, while unlisted %.1f (%d in %v), while listed and pending %.1f (%d in %v)",
				spec.Name, d.Round(time.Millisecond), idleRate,
				rate(cost.unlistedReqs, cost.unlisted), cost.unlistedReqs, cost.unlisted.Round(time.Millisecond),
				rate(cost.pendingReqs, cost.pending), cost.pendingReqs, cost.pending.Round(time.Millisecond))
			all = append(all, d)
			e.mustPing(probe.src)
			e.waitAltnames(spec.Name, fmt.Sprintf("eni-%017d", spec.Slot), fmt.Sprintf("device-number-%d.0", spec.DeviceNumber))
		}
	})
	if len(all) > 0 {
		slices.Sort(all)
		t.Logf("last required key -> routed over %d attaches: min %v, median %v, max %v", len(all),
			all[0].Round(time.Millisecond), all[len(all)/2].Round(time.Millisecond), all[len(all)-1].Round(time.Millisecond))
	}
}

// Scenario 2: a card-1 ENI with the same device number as a card-0 one gets its own table
// (10101 next to 10001), and both pass the VPC's source/destination check.
func TestCardOneENIBesideCardZeroWithTheSameDeviceNumber(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		card1 := lab.ENISpec{Slot: 3, Name: "ens8", MAC: "02:00:00:00:08:08", DeviceNumber: 1, NetworkCard: 1,
			PrivateIPs: []string{"10.99.3.10", "10.99.3.20"}, Attached: true}
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), secondENI(), card1}})
		e.startAgent()

		e.waitRule(ens6Rule10, true)
		e.waitRule(rule{Priority: 10101, Table: 10101, From: "10.99.3.10/32"}, true)
		e.waitRule(rule{Priority: 10101, Table: 10101, From: "10.99.3.20/32"}, true)
		e.waitFor("ens6's table routes", func() (bool, error) { return slices.Equal(e.routes(10001), ens6Table), nil })
		e.waitFor("ens8's table routes", func() (bool, error) {
			return slices.Equal(e.routes(10101), []string{"10.99.3.0/24 dev ens8", "default via 10.99.3.1 dev ens8"}), nil
		})
		e.waitForAddress("ens8", "10.99.3.10/24")
		e.waitForAddress("ens8", "10.99.3.20/32")
		e.waitAltnames("ens5", "eni-00000000000000000", "device-number-0.0")
		e.waitAltnames("ens6", "eni-00000000000000001", "device-number-1.0")
		e.waitAltnames("ens8", "eni-00000000000000003", "device-number-1.1")
		e.waitForAddress("ens6", "10.99.1.10/24")
		for _, src := range []string{"10.99.1.10", "10.99.1.20", "10.99.3.10", "10.99.3.20"} {
			e.mustPing(src)
		}
	})
}

// Scenario 3: network-card served by the card-1 ENI only. The primary is card 0 and configured
// at once, before the card-0 secondaries without the key, which fall back to card 0 once their
// wait is over (the lab's propagation_timeout, 5 s, caps the 12 s budget).
func TestMixedNetworkCardTreePrimaryAtOnceOthersAfterFallback(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		primary := primaryENI()
		primary.OmitNetworkCard = true
		second := secondENI()
		second.OmitNetworkCard = true
		third := lagENI()
		third.OmitNetworkCard, third.Attached = true, true
		card1 := lab.ENISpec{Slot: 4, Name: "ens9", MAC: "02:00:00:00:09:09", DeviceNumber: 0, NetworkCard: 1,
			PrivateIPs: []string{"10.99.4.10"}, Attached: true}
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primary, second, third, card1}})
		start := time.Now()
		// Not startAgent: on ifcfg it waits for every ENI's DHCP address, which the agent's
		// dhclient gets only once the ENI is configured.
		e.launchAgent()

		e.waitForAddress("ens5", "10.99.0.20/32") // the primary's secondary address: configured
		primaryAt := time.Since(start)
		// The daemon's passes do not wait for pending ENIs: the primary is configured by the
		// start pass, the fallback ENIs by a look after their wait.
		if e.hasRule(ens6Rule10) || e.hasRule(ens7Rule) {
			t.Errorf("the primary was configured only together with the fallback ENIs (the start pass waited for them): rules %v", e.rules())
		}
		e.waitRule(rule{Priority: 10100, Table: 10100, From: "10.99.4.10/32"}, true)
		e.waitRule(ens6Rule10, true)
		e.waitRule(ens7Rule, true)
		t.Logf("agent start -> primary configured: %v; -> fallback ENIs on card 0: %v",
			primaryAt.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		e.waitFor("ens9's table routes", func() (bool, error) {
			return slices.Equal(e.routes(10100), []string{"10.99.4.0/24 dev ens9", "default via 10.99.4.1 dev ens9"}), nil
		})
		e.waitFor("ens9's metric 612 in the main table", func() (bool, error) {
			return slices.ContainsFunc(e.mainDefaults(), func(r string) bool { return r == "ens9 metric 612" }), nil
		})
		e.waitAltnames("ens5", "device-number-0.0")
		e.waitAltnames("ens6", "device-number-1.0")
		e.waitAltnames("ens7", "device-number-2.0")
		e.waitAltnames("ens9", "eni-00000000000000004", "device-number-0.1")
		// A manager may re-acquire a lease when the agent's configuration replaces its own.
		for link, cidr := range map[string]string{"ens6": "10.99.1.10/24", "ens7": "10.99.2.10/24", "ens9": "10.99.4.10/24"} {
			e.waitForAddress(link, cidr)
		}
		for _, src := range []string{"10.99.0.20", "10.99.1.10", "10.99.2.10", "10.99.4.10"} {
			e.mustPing(src)
		}
	})
}

// mainDefaults lists the main table's default routes as "<dev> metric <n>".
func (e *env) mainDefaults() []string {
	e.t.Helper()
	rs, err := e.nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		e.t.Fatalf("ip route: %v", err)
	}
	var out []string
	for _, r := range rs {
		if r.Table != unix.RT_TABLE_MAIN || (r.Dst != nil && !isDefault(r.Dst)) {
			continue
		}
		if l, err := e.nl.LinkByIndex(r.LinkIndex); err == nil {
			out = append(out, fmt.Sprintf("%s metric %d", l.Attrs().Name, r.Priority))
		}
	}
	sort.Strings(out)
	return out
}

// Scenario 4: an ENI whose subnet-ipv4-cidr-block stays listed but answers 404 forever (IMDS
// lists the ENI before its link appears, so this does not depend on finding late listings). It
// stays pending with a reason, is never configured, and costs a bounded number of IMDS requests.
func TestENIThatNeverCompletesStaysPendingAndCostsBoundedRequests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), secondENI(), lagENI()}})
		e.startAgent()
		e.waitRule(ens6Rule10, true)
		e.waitForAddress("ens6", "10.99.1.20/32")

		const window = 10 * time.Second
		fake := e.l.IMDS()
		fake.ResetCounters()
		time.Sleep(window)
		baseline := fake.Requests()

		probe := lagProbe{iface: "ens7", table: 10002, src: "10.99.2.10"}
		// Listed but 404 for good: the attach publishes every other key as usual.
		fake.Apply(fakeimds.Step{MAC: "02:00:00:00:07:07", Key: core.KeySubnetIPv4CIDR, Action: fakeimds.Hold404})
		must(t, e.l.Attach("ens7"))
		e.waitLog("ens7 pending with its reason", "iface=ens7")
		// Past the propagation wait (5 s), into the steady state of refreshes.
		deadline := time.Now().Add(7 * time.Second)
		for time.Now().Before(deadline) {
			if s := probe.sample(e); s.touched() {
				t.Fatalf("ens7 configured although IMDS never completed it: %+v", s)
			}
			time.Sleep(100 * time.Millisecond)
		}
		fake.ResetCounters()
		for end := time.Now().Add(window); time.Now().Before(end); {
			if s := probe.sample(e); s.touched() {
				t.Fatalf("ens7 configured although IMDS never completed it: %+v", s)
			}
			time.Sleep(100 * time.Millisecond)
		}
		extra := fake.Requests() - baseline
		perMinute := float64(extra) * float64(time.Minute) / float64(window)
		t.Logf("IMDS requests: %d in %v without the pending ENI, %d with it: the pending ENI costs %.0f per minute at a 1 s refresh",
			baseline, window, baseline+extra, perMinute)
		log := e.agent.Log()
		if !strings.Contains(log, "subnet-ipv4-cidr-block") {
			t.Errorf("the agent log does not say what ens7 waits for:\n%s", log)
		}
		// One refresh re-reads its listing and keys: about 7 requests. Twice that per refresh
		// interval means the wait restarted or a storm.
		if perMinute > 14*60 {
			t.Errorf("the pending ENI costs %.0f IMDS requests per minute, want at most %d", perMinute, 14*60)
		}
	})
}

// Scenario 5a: an ENI attached while IMDS is down for 5 s is routed within about a refresh
// interval of IMDS coming back.
func TestHotAttachDuringIMDSOutageIsRoutedSoonAfterIMDSReturns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), secondENI(), lagENI()}})
		e.startAgent()
		e.waitRule(ens6Rule10, true)

		e.l.IMDS().SetDown(true)
		must(t, e.l.Attach("ens7"))
		time.Sleep(5 * time.Second)
		e.l.IMDS().SetDown(false)
		back := time.Now()
		probe := lagProbe{iface: "ens7", table: 10002, src: "10.99.2.10"}
		if err := e.l.WaitFor(context.Background(), "ens7 routed after the outage", routedBound, func() (bool, error) {
			return probe.sample(e).routed(probe), nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("IMDS back -> ens7 routed: %v", time.Since(back).Round(time.Millisecond))
		e.mustPing("10.99.2.10")
	})
}

// Scenario 5b: a known ENI's directory answers 404 for 5 s; then it gets a new secondary IP,
// which is configured within about a refresh interval.
func TestKnownENIDirectory404ThenNewIPIsConfiguredSoonAfter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.startAgent()
		e.waitRule(ens6Rule20, true)
		e.waitForAddress("ens6", "10.99.1.20/32")

		const mac = "02:00:00:00:06:06"
		_, err := e.l.PlayIMDS(context.Background(), []fakeimds.Step{
			{MAC: mac, Action: fakeimds.Hold404},
			{After: 5 * time.Second, MAC: mac, Action: fakeimds.Publish},
		})
		must(t, err)
		if !e.hasRule(ens6Rule20) {
			t.Logf("note: ens6's rules were removed during the 404 window: %v", e.rules())
		}
		added := time.Now() // UpdateIMDS returns after the VPC's DHCP and check follow, which takes a while
		must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
			s.Interfaces[mac][core.KeyLocalIPv4s] = append(s.Interfaces[mac][core.KeyLocalIPv4s], "10.99.1.30")
		}))
		want := rule{Priority: 10001, Table: 10001, From: "10.99.1.30/32"}
		if err := e.l.WaitFor(context.Background(), "10.99.1.30 configured", routedBound, func() (bool, error) {
			return e.hasRule(want) && slices.Contains(e.addresses("ens6"), "10.99.1.30/32"), nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("new IP after the 404 window -> configured: %v", time.Since(added).Round(time.Millisecond))
		e.mustPing("10.99.1.30")
	})
}
