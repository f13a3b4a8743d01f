package lab

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

const networkd6 = `[Match]
Name=ens5

[Network]
DHCP=yes
IPv6AcceptRA=yes
KeepConfiguration=dhcp

[DHCPv4]
UseHostname=no
UseDNS=no

[DHCPv6]
UseHostname=no
UseDNS=no
`

// startIPv6Client brings ens5 up with IPv4 and IPv6 by the manager's usual means.
var startIPv6Client = map[string]func(t *testing.T, l *Lab){
	"networkd": func(t *testing.T, l *Lab) {
		if err := l.WriteInstanceFile("/etc/systemd/network/70-ens5.network", networkd6, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := l.StartManager(ManagerNetworkd); err != nil {
			t.Fatal(err)
		}
	},
	"networkmanager": func(t *testing.T, l *Lab) {
		if err := l.StartManager(ManagerNetworkManager); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, args := range [][]string{
			{"nmcli", "connection", "add", "type", "ethernet", "ifname", "ens5", "con-name", "eni-ens5",
				"ipv4.method", "auto", "ipv6.method", "auto", "ipv6.addr-gen-mode", "eui64"},
			{"nmcli", "--wait", "15", "connection", "up", "eni-ens5"},
		} {
			if out, err := l.Command(ctx, args...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
	},
	// Amazon Linux 2's ifup: dhclient -4 and (DHCPV6C=yes) dhclient -6; the kernel takes the RA.
	"ifcfg dhclient -6": func(t *testing.T, l *Lab) {
		if err := l.SetupBackend("ifcfg", "../.."); err != nil {
			t.Fatal(err)
		}
	},
}

// hasAddr6 reports a usable (no longer tentative) IPv6 address on link.
func hasAddr6(l *Lab, link, addr string) func() (bool, error) {
	return func() (bool, error) {
		h, err := l.InstanceNetlink()
		if err != nil {
			return false, err
		}
		defer h.Close()
		lk, err := h.LinkByName(link)
		if err != nil {
			return false, nil
		}
		addrs, err := h.AddrList(lk, netlink.FAMILY_V6)
		if err != nil {
			return false, err
		}
		for _, a := range addrs {
			if a.IP.String() == addr && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return true, nil
			}
		}
		return false, nil
	}
}

// raDefault reports an IPv6 default route in main via a link-local router on link.
func raDefault(l *Lab, link string) func() (bool, error) {
	return func() (bool, error) {
		h, err := l.InstanceNetlink()
		if err != nil {
			return false, err
		}
		defer h.Close()
		lk, err := h.LinkByName(link)
		if err != nil {
			return false, nil
		}
		rs, err := h.RouteList(lk, netlink.FAMILY_V6)
		if err != nil {
			return false, err
		}
		for _, r := range rs {
			if (r.Dst == nil || r.Dst.String() == "::/0") && r.Gw != nil && r.Gw.IsLinkLocalUnicast() {
				return true, nil
			}
		}
		return false, nil
	}
}

func drops6(t *testing.T, l *Lab, iface string) int {
	t.Helper()
	d, err := l.Drops6()
	if err != nil {
		t.Fatal(err)
	}
	n, ok := d[iface]
	if !ok {
		t.Fatalf("no IPv6 drop counter for %s in %v", iface, d)
	}
	return n
}

// TestLabIPv6WithEachManager proves the lab's IPv6 against each client: the DHCPv6 address and
// the RA default route arrive, the source check passes the ENI's own IPv6 addresses and drops
// any other, and IMDS answers on [fd00:ec2::254] from inside the instance.
func TestLabIPv6WithEachManager(t *testing.T) {
	RequireRoot(t)
	for _, name := range []string{"networkd", "networkmanager", "ifcfg dhclient -6"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l, err := New(ctx, Options{
				Name:          testPrefix,
				Scenario:      &scenario.Scenario{InstanceID: "i-0123456789abcdef6"},
				IMDSEndpoints: IMDSDualStack,
				Logf:          t.Logf,
				ENIs: []ENISpec{{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", Attached: true,
					IPv6s: []string{"fd00:99::10", "fd00:99::20"}, IPv6Prefixes: []string{"fd00:99:0:0:1::/80"}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					for _, p := range l.procs {
						t.Logf("%s log tail:\n%s", p.name, p.tail())
					}
				}
				_ = l.Close()
			})
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			startIPv6Client[name](t, l)
			must(l.WaitFor(ctx, "ens5 leased fd00:99::10 by DHCPv6", 20*time.Second, hasAddr6(l, "ens5", "fd00:99::10")))
			t.Logf("timing: %s start -> DHCPv6 address %v", name, time.Since(start).Round(time.Millisecond))
			must(l.WaitFor(ctx, "ens5's RA default route in main", 20*time.Second, raDefault(l, "ens5")))
			t.Logf("timing: %s start -> RA default route %v", name, time.Since(start).Round(time.Millisecond))

			must(l.Ping(ctx, "fd00:99::10", l.InternetAddr6()))
			if n := drops6(t, l, "vpc0"); n != 0 {
				t.Errorf("vpc0 IPv6 drops = %d after a ping from the DHCPv6 address, want 0", n)
			}

			for path, want := range map[string]string{
				"instance-id": "i-0123456789abcdef6",
				"network/interfaces/macs/02:00:00:00:05:05/ipv6s":                   "fd00:99::10\nfd00:99::20",
				"network/interfaces/macs/02:00:00:00:05:05/ipv6-prefix":             "fd00:99:0:0:1::/80",
				"network/interfaces/macs/02:00:00:00:05:05/subnet-ipv6-cidr-blocks": "fd00:99::/64",
				"network/interfaces/macs/02:00:00:00:05:05/vpc-ipv6-cidr-blocks":    "fd00:99::/56",
			} {
				if got := imdsGetAt(t, l, "["+IMDSAddr6+"]", path); got != want {
					t.Errorf("IMDS on [%s] %s = %q, want %q", IMDSAddr6, path, got, want)
				}
			}
			if got := imdsGetAt(t, l, IMDSAddr, "instance-id"); got != "i-0123456789abcdef6" {
				t.Errorf("IMDS on %s instance-id = %q", IMDSAddr, got)
			}
			h, err := l.InstanceNetlink()
			must(err)
			defer h.Close()
			ens5, err := h.LinkByName("ens5")
			must(err)
			for _, a := range []string{"fd00:99::20/128", "fd00:99::1:0:0:7/128", "fd00:99::99/128"} {
				must(addAddrNoDAD(h, ens5, a))
			}
			// Further ipv6s and addresses in the delegated prefix pass; nothing else does.
			// The router resolves a new address by neighbour discovery first; an echo may race it
			// (as ARP in the IPv4 tests), so a right source gets three tries.
			must(pingTries(ctx, l, "fd00:99::20", l.InternetAddr6()))
			must(pingTries(ctx, l, "fd00:99::1:0:0:7", l.InternetAddr6()))
			before := drops6(t, l, "vpc0")
			if err := l.Ping(ctx, "fd00:99::99", l.InternetAddr6()); err == nil {
				t.Error("ping from fd00:99::99 (not in IMDS) got a reply; the VPC must drop it")
			}
			if after := drops6(t, l, "vpc0"); after != before+1 {
				t.Errorf("vpc0 IPv6 drops %d -> %d, want exactly one more", before, after)
			}
			if d, err := l.Drops(); err != nil || d["vpc0"] != 0 {
				t.Errorf("vpc0 IPv4 drops = %v (%v), want 0: the IPv6 check counts apart", d, err)
			}

		})
	}
}

// TestLabIPv6OnlyIMDS: with IMDSIPv6Only nothing answers on 169.254.169.254, and
// [fd00:ec2::254] answers from an IPv6-only ENI.
func TestLabIPv6OnlyIMDS(t *testing.T) {
	RequireRoot(t)
	ctx := context.Background()
	l, err := New(ctx, Options{
		Name:          testPrefix,
		IMDSEndpoints: IMDSIPv6Only,
		Logf:          t.Logf,
		ENIs: []ENISpec{{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", Attached: true,
			IPv6Only: true, IPv6s: []string{"fd00:99::10"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	startIPv6Client["networkd"](t, l)
	if err := l.WaitFor(ctx, "ens5 leased fd00:99::10", 20*time.Second, hasAddr6(l, "ens5", "fd00:99::10")); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(ctx, "ens5's RA default route", 20*time.Second, raDefault(l, "ens5")); err != nil {
		t.Fatal(err)
	}
	if got := imdsGetAt(t, l, "["+IMDSAddr6+"]", "network/interfaces/macs/02:00:00:00:05:05/"); strings.Contains(got, "local-ipv4s") || !strings.Contains(got, "ipv6s") {
		t.Errorf("IPv6-only ENI lists %q", got)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if out, err := l.Command(cctx, "curl", "-sf", "-m", "2", "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60",
		"http://"+IMDSAddr+"/latest/api/token").CombinedOutput(); err == nil {
		t.Errorf("169.254.169.254 answered in an IPv6-only lab: %s", out)
	}
}

// imdsGetAt fetches a metadata path from inside the instance with curl (IMDSv2 token first)
// from the IMDS at host (an address, IPv6 in brackets).
func imdsGetAt(t *testing.T, l *Lab, host, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	script := `T=$(curl -gsf -m 3 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://` + host + `/latest/api/token) &&
curl -gsf -m 3 -H "X-aws-ec2-metadata-token: $T" http://` + host + `/latest/meta-data/` + path
	out, err := l.Command(ctx, "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("IMDS GET %s on %s from the instance: %v: %s", path, host, err, out)
	}
	return string(out)
}

// pingTries is Ping with up to three tries.
func pingTries(ctx context.Context, l *Lab, src, dst string) error {
	var err error
	for range 3 {
		if err = l.Ping(ctx, src, dst); err == nil {
			return nil
		}
	}
	return err
}
