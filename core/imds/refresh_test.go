package imds_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// A no-change refresh of an IPv4 ENI costs at most two requests (local-ipv4s and ipv4-prefix:
// what changes without a link event), whether or not it has prefixes; a dual-stack ENI adds
// ipv6s and ipv6-prefix. Nothing else is read: no listing, no stable keys (issue #16).
func TestRefreshReadsOnlyAddressesAndPrefixes(t *testing.T) {
	l := startFake(t, "delegated-prefixes.json")
	c := newClient(t, l)
	full := snapshot(t, c, nil)
	before := c.Requests()
	reused := snapshot(t, c, &full)
	// primary (IPv4): 2; secondary (dual-stack, with prefixes): 4.
	if n := c.Requests() - before; n != 2+4 {
		t.Errorf("no-change refresh: %d requests, want 6", n)
	}
	if diff := cmp.Diff(full, reused, netipComparers); diff != "" {
		t.Errorf("refresh changed the snapshot (-full +refresh):\n%s", diff)
	}
}

func TestRefreshPicksUpAddressAndPrefixChanges(t *testing.T) {
	l := startFake(t, "delegated-prefixes.json")
	c := newClient(t, l)
	last := snapshot(t, c, nil)
	steps := []struct {
		name   string
		change func(map[string]scenario.Value)
		check  func(core.ENI) bool
	}{
		{"secondary IP added", func(k map[string]scenario.Value) { k["local-ipv4s"] = scenario.Value{"10.0.1.10", "10.0.1.11"} },
			func(e core.ENI) bool { return len(e.LocalIPv4s) == 2 }},
		{"prefix removed", func(k map[string]scenario.Value) { k["ipv4-prefix"] = scenario.Value{"10.0.1.64/28"} },
			func(e core.ENI) bool { return len(e.IPv4Prefixes) == 1 }},
		{"all IPv4 prefixes removed", func(k map[string]scenario.Value) { delete(k, "ipv4-prefix") },
			func(e core.ENI) bool { return len(e.IPv4Prefixes) == 0 }},
		{"prefix added again", func(k map[string]scenario.Value) { k["ipv4-prefix"] = scenario.Value{"10.0.1.160/28"} },
			func(e core.ENI) bool {
				return len(e.IPv4Prefixes) == 1 && e.IPv4Prefixes[0].String() == "10.0.1.160/28"
			}},
		{"IPv6 address added", func(k map[string]scenario.Value) {
			k["ipv6s"] = scenario.Value{"2600:1f14:abc:de01::10", "2600:1f14:abc:de01::11"}
		}, func(e core.ENI) bool { return len(e.IPv6s) == 2 }},
	}
	for _, s := range steps {
		l.fake.Update(func(sc *scenario.Scenario) { s.change(sc.Interfaces[secondaryMAC]) })
		last = snapshot(t, c, &last)
		if e := findENI(t, last, secondaryMAC); !s.check(e) {
			t.Errorf("%s: not picked up by the refresh: %+v", s.name, e)
		}
	}
}

// A key the last read had that answers 404 is not taken as "removed" on the word of one GET:
// the ENI is read the long way (listing first), which tells a detach from a key IMDS is still
// propagating.
func TestRefreshConfirmsAVanishedKeyWithTheListing(t *testing.T) {
	l := startFake(t, "delegated-prefixes.json")
	c := newClient(t, l)
	full := snapshot(t, c, nil)
	l.fake.NotFoundUntil(secondaryMAC+"/ipv4-prefix", 1)
	inst := snapshot(t, c, &full)
	for _, e := range inst.ENIs {
		if e.MAC == secondaryMAC && len(e.IPv4Prefixes) != 2 {
			t.Errorf("one 404 on ipv4-prefix dropped the prefixes: %v", e.IPv4Prefixes)
		}
	}
	if e := findENI(t, snapshot(t, c, &inst), secondaryMAC); len(e.IPv4Prefixes) != 2 {
		t.Errorf("prefixes after the 404: %v", e.IPv4Prefixes)
	}
	// Detached: local-ipv4s answers 404, the listing too: the ENI is gone, not an error.
	l.fake.Update(func(sc *scenario.Scenario) { delete(sc.Interfaces, secondaryMAC) })
	inst = snapshot(t, c, &full)
	if slices.Contains(macs(inst), secondaryMAC) || len(inst.Problems) != 0 {
		t.Errorf("detached ENI still there: %v, problems %v", macs(inst), inst.Problems)
	}
}

// The refresh's fast path (fast.go) leaves every failure to the SDK: a token IMDS dropped and a
// server error are retried there, and the refresh succeeds with the same snapshot.
func TestRefreshFallsBackToTheSDKOnFailures(t *testing.T) {
	l := startFake(t, "delegated-prefixes.json")
	c := newClient(t, l)
	full := snapshot(t, c, nil)
	for name, fail := range map[string]func(){
		"token dropped": l.fake.ExpireTokens,
		"503":           func() { l.fake.FailNext(1, 503) },
		"429":           func() { l.fake.Throttle(1) },
	} {
		fail()
		inst, err := c.Snapshot(context.Background(), &full)
		if err != nil {
			t.Fatalf("%s: refresh failed: %v", name, err)
		}
		if diff := cmp.Diff(full, inst, netipComparers); diff != "" {
			t.Errorf("%s: refresh differs (-full +refresh):\n%s", name, diff)
		}
		// And the next refresh is back to 6 requests.
		before := c.Requests()
		snapshot(t, c, &full)
		if n := c.Requests() - before; n != 6 {
			t.Errorf("%s: next refresh took %d requests, want 6", name, n)
		}
	}
	if ua := l.fake.LastUserAgent(); !strings.Contains(ua, "ec2-net-utils/1.2.3-test") {
		t.Errorf("User-Agent %q does not carry ec2-net-utils/<version>", ua)
	}
}

// A hot attach reads the listing and the new ENI only, even when the last read had its MAC (a
// re-attached ENI may come back with another device number).
func TestAttachedReadsOnlyTheNewENI(t *testing.T) {
	l := startFake(t, "delegated-prefixes.json")
	c := newClient(t, l)
	snapshot(t, c, nil)
	l.fake.Update(func(sc *scenario.Scenario) { sc.Interfaces[secondaryMAC]["device-number"] = scenario.Value{"3"} })
	before := c.Requests()
	inst, err := c.Attached(context.Background(), []string{secondaryMAC})
	if err != nil {
		t.Fatal(err)
	}
	// macs/ + the secondary's listing + its 8 keys; nothing for the primary.
	if n := c.Requests() - before; n != 1+1+8 {
		t.Errorf("Attached: %d requests, want 10", n)
	}
	if e := findENI(t, inst, secondaryMAC); e.DeviceNumber != 3 {
		t.Errorf("re-attached ENI kept device-number %d, want 3", e.DeviceNumber)
	}
	if e := findENI(t, inst, primaryMAC); len(e.LocalIPv4s) != 1 {
		t.Errorf("primary not taken from the last read: %+v", e)
	}
}
