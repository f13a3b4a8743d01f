package imds

import (
	"context"
	"maps"
	"slices"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// A refresh (a read that reuses the last snapshot) re-reads only what can change while an ENI
// stays attached and sends no event: its addresses and delegated prefixes. Attach, detach and
// renumbering come with link events, which ask for a read without reuse, and the daemon's every
// FullRefreshEvery-th refresh reads everything anyway. So a known, valid ENI costs:
//
//	IPv4 ENI:       local-ipv4s, ipv4-prefix                      2 requests
//	dual-stack ENI: the same plus ipv6s, ipv6-prefix              4 requests
//	IPv6-only ENI:  ipv6s, ipv6-prefix                            2 requests
//
// instead of its listing plus each dynamic key it lists (3 for an IPv4 ENI with prefixes, up to 7
// dual-stack). Without the listing a 404 cannot tell "absent" from "not propagated" or
// "detached", so a 404 is taken as "absent" only for a key the last read did not have either;
// a key the last read had that now answers 404 sends the ENI down the long path (listing, then
// its keys), which tells a detach (the listing answers 404) from a key still propagating
// (listed, 404: the ENI is pending) exactly as before.
//
// What this path does not see until the next full read: an ENI of an IPv4-only subnet getting
// IPv6 (its subnet gained an IPv6 CIDR), and a new VPC or subnet IPv6 CIDR block; nothing is
// planned from those before the ENI has IPv6 addresses, which need the subnet's block first.

// refreshKeys are the keys a refresh fetches for an ENI whose last read keys are last.
func refreshKeys(last map[string]string) []string {
	var keys []string
	if _, ok := last[core.KeyLocalIPv4s]; ok {
		keys = append(keys, core.KeyLocalIPv4s, core.KeyIPv4Prefix)
	}
	_, dualStack := last[core.KeySubnetIPv6CIDR]
	if _, ok := last[core.KeyIPv6s]; ok || dualStack {
		keys = append(keys, core.KeyIPv6s, core.KeyIPv6Prefix)
	}
	return keys
}

// refreshKnown reads, for each of dirs that is valid in reuse and complete in the last reading,
// only its refreshKeys, taking every other key from the last reading. It returns the dirs it did
// not settle: those readENIs reads the long way.
func (c *Client) refreshKnown(ctx context.Context, r *reading, dirs []string, reuse map[string]core.ENI) ([]string, error) {
	c.mu.Lock()
	lastKeys := map[string]map[string]string{}
	if c.last != nil {
		for dir, keys := range c.last.raw.ENIs {
			if len(c.last.unsettled[dir]) == 0 {
				lastKeys[normMAC(dir)] = keys // read only below; remember() stores clones
			}
		}
	}
	c.mu.Unlock()

	type job struct {
		dir  string
		keys []string
		base map[string]string
	}
	var jobs []job
	long := map[string]bool{}
	for _, dir := range dirs {
		mac := normMAC(dir)
		last, known := lastKeys[mac]
		_, valid := reuse[mac]
		keys := refreshKeys(last)
		if !known || !valid || len(keys) == 0 {
			long[dir] = true
			continue
		}
		base := maps.Clone(last)
		for _, k := range keys {
			delete(base, k)
		}
		jobs = append(jobs, job{dir, keys, base})
	}

	// One at a time over the kept-alive connection: nobody waits for a refresh, and on a VM
	// every thread wake-up costs more than the request.
	err := forEach(ctx, 1, jobs, func(ctx context.Context, j job) error {
		last := lastKeys[normMAC(j.dir)]
		for _, key := range j.keys {
			body, found, err := c.getFast(ctx, macPath(j.dir, key))
			if err != nil {
				return err
			}
			if found {
				j.base[key] = body
				continue
			}
			if _, had := last[key]; had {
				// Removed, detached, or propagating: only the listing can tell.
				c.log.Debug("key the last read had answers 404; reading the ENI in full", "mac", j.dir, "key", key)
				long[j.dir] = true
				return nil
			}
		}
		r.raw.ENIs[j.dir] = j.base
		delete(r.unsettled, j.dir)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// In the caller's order: the long path reads in it.
	return slices.DeleteFunc(slices.Clone(dirs), func(d string) bool { return !long[d] }), nil
}

// unchanged returns the last read's instance when a refresh (reuse set) read exactly the keys
// the last read had and nothing is pending: parsing 32 ENIs × 54 values again would give the same
// instance, and parsing is a third of a no-change refresh's CPU. What remember() keeps stays as
// it is, which is what it would store again.
func (c *Client) unchanged(r *reading, reuse *core.Instance) (core.Instance, bool) {
	if reuse == nil || len(r.unsettled) > 0 {
		return core.Instance{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.last
	if last == nil || len(last.unsettled) > 0 || len(c.pendingSince) > 0 || last.raw.PrimaryMAC != r.raw.PrimaryMAC ||
		!slices.Equal(last.raw.AssumeCardZero, r.raw.AssumeCardZero) || len(last.raw.ENIs) != len(r.raw.ENIs) {
		return core.Instance{}, false
	}
	for dir, keys := range r.raw.ENIs {
		if prev, ok := last.raw.ENIs[dir]; !ok || !maps.Equal(prev, keys) {
			return core.Instance{}, false
		}
	}
	return c.lastInst, true
}
