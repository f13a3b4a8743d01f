package lab

// IPv6 in the simulated VPC, as EC2 serves it: each dual-stack subnet has a /64 on the router's
// vpcN; the router sends router advertisements with the Managed flag from its link-local address
// (the default route) and serves stateful DHCPv6 with one fixed address per ENI (its first ipv6s
// entry); further ipv6s and ipv6-prefix are the instance's to configure. All addresses are ULA or
// documentation ranges that route nowhere outside the lab.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/netnsx"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// IPv6 addresses of the simulated VPC. They exist only inside the lab's vpc namespace.
const (
	IMDSAddr6     = "fd00:ec2::254"
	internetAddr6 = "2001:db8:ffff::1" // documentation range: never routed anywhere real
	vpcCIDR6      = "fd00:99::/56"     // EC2 gives a VPC a /56 and each subnet a /64 of it
)

// IMDSEndpoints selects the addresses the fake IMDS answers on.
type IMDSEndpoints int

const (
	// IMDSIPv4 serves 169.254.169.254 only: EC2's default (HttpProtocolIpv6 disabled).
	IMDSIPv4 IMDSEndpoints = iota
	// IMDSDualStack serves 169.254.169.254 and [fd00:ec2::254].
	IMDSDualStack
	// IMDSIPv6Only serves [fd00:ec2::254] only, as an IPv6-only instance reaches IMDS.
	IMDSIPv6Only
)

// addrs lists the listen addresses, host:port.
func (m IMDSEndpoints) addrs() []string {
	v4, v6 := net.JoinHostPort(IMDSAddr, "80"), net.JoinHostPort(IMDSAddr6, "80")
	switch m {
	case IMDSDualStack:
		return []string{v4, v6}
	case IMDSIPv6Only:
		return []string{v6}
	default:
		return []string{v4}
	}
}

// Subnet6 is slot N's IPv6 subnet, fd00:99:0:N::/64.
func Subnet6(slot int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x00, 0x00, 0x99, 0, 0, 0, byte(slot)}), 64)
}

// router6 is the VPC router's global address on slot N's subnet (the RAs come from its
// link-local address, as on EC2).
func router6(slot int) netip.Addr { return Subnet6(slot).Addr().Next() }

// InternetAddr6 is an IPv6 address outside the VPC that answers pings, reached via the router.
func (l *Lab) InternetAddr6() string { return internetAddr6 }

// hasIPv6Subnet reports whether the ENI's subnet is dual-stack (or IPv6-only).
func (s *ENISpec) hasIPv6Subnet() bool {
	return s.IPv6Subnet || s.IPv6Only || len(s.IPv6s) > 0 || len(s.IPv6Prefixes) > 0
}

// normalizeIPv6 checks the IPv6 part of a spec: every address and prefix inside the slot's /64.
func (s *ENISpec) normalizeIPv6() error {
	subnet := Subnet6(s.Slot)
	if s.IPv6Only && len(s.IPv6s) == 0 {
		return fmt.Errorf("lab: ENI %s: IPv6Only needs at least one IPv6 address", s.Name)
	}
	if s.IPv6Only && len(s.PrivateIPs) > 0 {
		return fmt.Errorf("lab: ENI %s: IPv6Only with private IPv4 addresses %v", s.Name, s.PrivateIPs)
	}
	for i, ip := range s.IPv6s {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is6() || !subnet.Contains(a) || a == subnet.Addr() || a == router6(s.Slot) {
			return fmt.Errorf("lab: ENI %s: IPv6 address %q is not a host address of %s (::1 is the router's)", s.Name, ip, subnet)
		}
		s.IPv6s[i] = a.String()
	}
	for i, p := range s.IPv6Prefixes {
		pp, err := netip.ParsePrefix(p)
		if err != nil || !pp.Addr().Is6() || !subnet.Contains(pp.Addr()) || pp.Bits() < 64 || pp.Masked() != pp {
			return fmt.Errorf("lab: ENI %s: IPv6 prefix %q not inside %s", s.Name, p, subnet)
		}
		s.IPv6Prefixes[i] = pp.String()
	}
	return nil
}

// addIPv6Keys adds what IMDS lists for an ENI on a dual-stack or IPv6-only subnet.
func addIPv6Keys(keys map[string]scenario.Value, spec ENISpec) {
	if !spec.hasIPv6Subnet() {
		return
	}
	keys[core.KeySubnetIPv6CIDR] = scenario.Value{Subnet6(spec.Slot).String()}
	keys[core.KeyVPCIPv6CIDRs] = scenario.Value{vpcCIDR6}
	if len(spec.IPv6s) > 0 {
		keys[core.KeyIPv6s] = append(scenario.Value(nil), spec.IPv6s...)
	}
	if len(spec.IPv6Prefixes) > 0 {
		keys[core.KeyIPv6Prefix] = append(scenario.Value(nil), spec.IPv6Prefixes...)
	}
	if spec.IPv6Only {
		delete(keys, core.KeyLocalIPv4s)
		delete(keys, core.KeySubnetIPv4CIDR)
	}
}

// setupVPC6 enables IPv6 routing in the router namespace and puts the "internet" and, when
// served, the IMDS IPv6 addresses on lo. It must run before any veth exists: DAD off everywhere
// (otherwise dnsmasq's first RA leaves from a global address while the link-local one is still
// tentative, and networkd ignores it) is inherited from "default" by links created later.
func (l *Lab) setupVPC6(h *netlink.Handle, lo netlink.Link, imds IMDSEndpoints) error {
	for _, kv := range [][2]string{
		{"net.ipv6.conf.all.disable_ipv6", "0"},
		{"net.ipv6.conf.default.disable_ipv6", "0"},
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
		{"net.ipv6.conf.all.forwarding", "1"},
	} {
		if err := sysctl(l.vpc, kv[0], kv[1]); err != nil {
			return err
		}
	}
	addrs := []string{internetAddr6 + "/128"}
	if imds != IMDSIPv4 {
		addrs = append(addrs, IMDSAddr6+"/128")
	}
	for _, a := range addrs {
		if err := addAddrNoDAD(h, lo, a); err != nil {
			return fmt.Errorf("lab: %s: %w", l.vpcNS, err)
		}
	}
	return nil
}

// addRouter6 gives the router side of a dual-stack ENI its address in the subnet: dnsmasq sends
// RAs and serves DHCPv6 only on links with an address in a configured range.
func (l *Lab) addRouter6(h *netlink.Handle, link netlink.Link, e *eni) error {
	if !e.spec.hasIPv6Subnet() {
		return nil
	}
	a := netip.PrefixFrom(router6(e.spec.Slot), 64).String()
	if err := addAddrNoDAD(h, link, a); err != nil {
		return fmt.Errorf("lab: %s: %w", l.vpcNS, err)
	}
	return nil
}

func addAddrNoDAD(h *netlink.Handle, link netlink.Link, cidr string) error {
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	addr.Flags = 0x02 // IFA_F_NODAD: usable (and bindable) at once
	if err := h.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("ip addr add %s dev %s nodad: %w", cidr, link.Attrs().Name, err)
	}
	return nil
}

// dnsmasqArgs6 turns on router advertisements and stateful DHCPv6 for every slot. A "static"
// range hands out only host-file addresses and makes dnsmasq's RAs carry the Managed flag without
// the autonomous (SLAAC) flag: EC2's behaviour. Slots whose vpcN has no address in the range
// (IPv4-only subnets) get neither.
func dnsmasqArgs6() []string {
	args := []string{"--enable-ra"}
	for n := 0; n <= maxSlot; n++ {
		args = append(args, fmt.Sprintf("--dhcp-range=set:s%dv6,%s,static,64,1h", n, Subnet6(n).Addr()))
	}
	return args
}

// hostLine is an ENI's dnsmasq host entry: its MAC, its DHCPv4 address (local-ipv4s[0]) and its
// DHCPv6 address (ipv6s[0]) when it has them; "" when it has neither. dnsmasq matches a DHCPv6
// client to the MAC through the neighbour table, so this works whatever DUID the client sends.
func hostLine(mac string, keys map[string]scenario.Value) string {
	fields := []string{mac}
	if v := keys[core.KeyLocalIPv4s]; len(v) > 0 {
		if a, err := netip.ParseAddr(v[0]); err == nil && a.Is4() {
			fields = append(fields, a.String())
		}
	}
	if v := keys[core.KeyIPv6s]; len(v) > 0 {
		if a, err := netip.ParseAddr(v[0]); err == nil && a.Is6() {
			fields = append(fields, "["+a.String()+"]")
		}
	}
	if len(fields) == 1 {
		return "" // a test feeding IMDS garbage must not break the VPC
	}
	return strings.Join(fields, ",")
}

// allowedSources6 lists an ENI's ipv6s and ipv6-prefix entries from the scenario; values that do
// not parse are skipped so a test can serve malformed IMDS data.
func allowedSources6(keys map[string]scenario.Value) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, v := range keys[core.KeyIPv6s] {
		if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil && a.Is6() && !a.Is4In6() {
			add(a.String())
		}
	}
	for _, v := range keys[core.KeyIPv6Prefix] {
		if p, err := netip.ParsePrefix(strings.TrimSpace(v)); err == nil && p.Addr().Is6() && !p.Addr().Is4In6() {
			add(p.Masked().String())
		}
	}
	return out
}

// renderSrcCheck6 is the IPv6 half of the source/destination check, loaded in the same nft
// transaction as the IPv4 one. Link-local sources (neighbour discovery, router solicitations,
// DHCPv6 solicits) and the unspecified address (duplicate address detection) always pass.
func renderSrcCheck6(ifaces []srcCheckIface) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip6 %s {\n", nftTable)
	for _, i := range ifaces {
		fmt.Fprintf(&b, "\tcounter %s { }\n", counterName(i.Name))
	}
	b.WriteString("\tchain srccheck {\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t}\n}\n")
	fmt.Fprintf(&b, "flush chain ip6 %s srccheck\n", nftTable)
	fmt.Fprintf(&b, "table ip6 %s {\n\tchain srccheck {\n", nftTable)
	for _, i := range ifaces {
		fmt.Fprintf(&b, "\t\tiifname %q ip6 saddr :: accept\n", i.Name)
		fmt.Fprintf(&b, "\t\tiifname %q ip6 saddr fe80::/10 accept\n", i.Name)
		for _, s := range i.Sources6 {
			fmt.Fprintf(&b, "\t\tiifname %q ip6 saddr %s accept\n", i.Name, s)
		}
		fmt.Fprintf(&b, "\t\tiifname %q counter name %q drop\n", i.Name, counterName(i.Name))
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// Drops6 is Drops for IPv6: per vpc-side interface, the IPv6 packets the check dropped.
func (l *Lab) Drops6() (map[string]int, error) {
	out, err := exec.Command("ip", "netns", "exec", l.vpcNS, "nft", "-j", "list", "counters", "table", "ip6", nftTable).Output()
	if err != nil {
		return nil, fmt.Errorf("lab: list nft IPv6 counters in %s: %w", l.vpcNS, err)
	}
	return parseCounters(out)
}

// attachedHasIPv6 reports whether the ENI named name is on a dual-stack or IPv6-only subnet.
func (l *Lab) attachedHasIPv6(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.enis[name]
	return ok && e.spec.hasIPv6Subnet()
}

// waitLinkLocal waits until the instance's link name has a link-local address that is no longer
// tentative.
func (l *Lab) waitLinkLocal(name string) error {
	return l.WaitFor(context.Background(), name+"'s link-local address usable", 10*time.Second, func() (bool, error) {
		h, err := l.InstanceNetlink()
		if err != nil {
			return false, err
		}
		defer h.Close()
		link, err := h.LinkByName(name)
		if err != nil {
			return false, nil
		}
		if link.Attrs().OperState != netlink.OperUp {
			if err := h.LinkSetUp(link); err != nil {
				return false, fmt.Errorf("ip link set %s up: %w", name, err)
			}
		}
		addrs, err := h.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return false, err
		}
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return true, nil
			}
		}
		return false, nil
	})
}

// BlockRA stops (block) or lets through again the router advertisements the VPC router sends
// on slot's subnet, so a test can make an RA arrive late. DHCPv6 is not blocked, but managers
// that wait for the RA's Managed flag do not ask for it before.
func (l *Lab) BlockRA(slot int, block bool) error {
	table := fmt.Sprintf("%s_ra%d", nftTable, slot)
	if !block {
		return run(context.Background(), "ip", "netns", "exec", l.vpcNS, "nft", "delete", "table", "ip6", table)
	}
	rule := fmt.Sprintf("table ip6 %s { chain out { type filter hook output priority 0; oifname \"vpc%d\" icmpv6 type nd-router-advert drop; }; }", table, slot)
	return run(context.Background(), "ip", "netns", "exec", l.vpcNS, "nft", rule)
}

// SolicitRouter sends a router solicitation from the instance's link, as a host does when its
// link comes up: the VPC router answers with an RA at once instead of at its next periodic one.
func (l *Lab) SolicitRouter(link string) error {
	return netnsx.Do(l.inst, func() error {
		ifc, err := net.InterfaceByName(link)
		if err != nil {
			return fmt.Errorf("lab: router solicitation on %s: %w", link, err)
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return fmt.Errorf("lab: router solicitation on %s: %w", link, err)
		}
		defer unix.Close(fd)
		// Neighbour discovery packets must carry hop limit 255 (RFC 4861 6.1.1); the kernel fills
		// in the ICMPv6 checksum of raw ICMPv6 sockets.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return fmt.Errorf("lab: router solicitation on %s: %w", link, err)
		}
		rs := []byte{133, 0, 0, 0, 0, 0, 0, 0}
		to := &unix.SockaddrInet6{Addr: [16]byte{0xff, 0x02, 15: 0x02}, ZoneId: uint32(ifc.Index)}
		if err := unix.Sendto(fd, rs, 0, to); err != nil {
			return fmt.Errorf("lab: router solicitation on %s: %w", link, err)
		}
		return nil
	})
}
