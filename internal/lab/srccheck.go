package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// The VPC source/destination check: EC2 drops a packet an ENI sends from an address that is not
// one of its private IPs or inside one of its delegated prefixes. The lab enforces the same in the
// vpc namespace, so a route that sends traffic out of the wrong ENI fails a test instead of
// working by accident (the router would happily answer through the right subnet).

const nftTable = "ec2lab"

// srcCheckIface is what one vpc-side interface accepts.
type srcCheckIface struct {
	Name     string   // vpcN
	Sources  []string // addresses and prefixes, nft syntax
	Sources6 []string // the same for IPv6
}

// counterName is the named nft counter that counts drops on iface. Counters are objects that
// survive the rule regeneration, so drops accumulate across scenario changes.
func counterName(iface string) string { return "srccheck_" + iface }

// renderSrcCheck returns an nft script that atomically replaces the check. DHCP from 0.0.0.0 must
// pass (a client has no address yet); ARP is not IPv4 and is never seen by an ip-family table.
func renderSrcCheck(ifaces []srcCheckIface) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", nftTable)
	for _, i := range ifaces {
		fmt.Fprintf(&b, "\tcounter %s { }\n", counterName(i.Name))
	}
	b.WriteString("\tchain srccheck {\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t}\n}\n")
	fmt.Fprintf(&b, "flush chain ip %s srccheck\n", nftTable)
	fmt.Fprintf(&b, "table ip %s {\n\tchain srccheck {\n", nftTable)
	for _, i := range ifaces {
		fmt.Fprintf(&b, "\t\tiifname %q ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept\n", i.Name)
		// One rule per source: an anonymous set would reject an address inside a listed prefix.
		for _, s := range i.Sources {
			fmt.Fprintf(&b, "\t\tiifname %q ip saddr %s accept\n", i.Name, s)
		}
		fmt.Fprintf(&b, "\t\tiifname %q counter name %q drop\n", i.Name, counterName(i.Name))
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// allowedSources lists an ENI's local-ipv4s and ipv4-prefix entries from the scenario; values
// that do not parse are skipped so a test can serve malformed IMDS data.
func allowedSources(keys map[string]scenario.Value) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, v := range keys[core.KeyLocalIPv4s] {
		if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil && a.Is4() {
			add(a.String())
		}
	}
	for _, v := range keys[core.KeyIPv4Prefix] {
		if p, err := netip.ParsePrefix(strings.TrimSpace(v)); err == nil && p.Addr().Is4() {
			add(p.Masked().String())
		}
	}
	return out
}

// srcCheckIfaces derives the check from the current scenario: only ENIs IMDS publishes may send.
// Callers hold l.mu.
func (l *Lab) srcCheckIfaces() []srcCheckIface {
	sc := l.imds.Scenario()
	enis := slices.SortedFunc(maps.Values(l.enis), func(a, b *eni) int { return a.spec.Slot - b.spec.Slot })
	out := make([]srcCheckIface, 0, len(enis))
	for _, e := range enis {
		keys := sc.Interfaces[e.mac]
		out = append(out, srcCheckIface{Name: e.vpcName(), Sources: allowedSources(keys), Sources6: allowedSources6(keys)})
	}
	return out
}

// syncSrcCheck loads the ruleset in one nft transaction. Callers hold l.mu.
func (l *Lab) syncSrcCheck(ctx context.Context) error {
	path := filepath.Join(l.dir, "srccheck.nft")
	ifaces := l.srcCheckIfaces()
	if err := os.WriteFile(path, []byte(renderSrcCheck(ifaces)+renderSrcCheck6(ifaces)), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return run(ctx, "ip", "netns", "exec", l.vpcNS, "nft", "-f", path)
}

// Drops returns, per vpc-side interface (vpcN), how many packets the source/destination check
// dropped since the ENI was added.
func (l *Lab) Drops() (map[string]int, error) {
	out, err := exec.Command("ip", "netns", "exec", l.vpcNS, "nft", "-j", "list", "counters", "table", "ip", nftTable).Output()
	if err != nil {
		return nil, fmt.Errorf("lab: list nft counters in %s: %w", l.vpcNS, err)
	}
	return parseCounters(out)
}

func parseCounters(b []byte) (map[string]int, error) {
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets int    `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("lab: parse nft counters: %w", err)
	}
	drops := map[string]int{}
	for _, o := range doc.Nftables {
		if o.Counter == nil {
			continue
		}
		if iface, ok := strings.CutPrefix(o.Counter.Name, "srccheck_"); ok {
			drops[iface] = o.Counter.Packets
		}
	}
	return drops, nil
}
