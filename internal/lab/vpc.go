package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/netnsx"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// setupVPC configures the router namespace: addresses on lo, forwarding between subnets, and
// rp_filter off so that only the source/destination check decides what is dropped.
func (l *Lab) setupVPC(imds IMDSEndpoints) error {
	h, err := netlink.NewHandleAt(l.vpc)
	if err != nil {
		return fmt.Errorf("lab: netlink in %s: %w", l.vpcNS, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lab: %s lo: %w", l.vpcNS, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lab: %s: ip link set lo up: %w", l.vpcNS, err)
	}
	v4 := []string{internetAddr + "/32"}
	if imds != IMDSIPv6Only {
		v4 = append(v4, IMDSAddr+"/32")
	}
	for _, a := range v4 {
		addr, _ := netlink.ParseAddr(a)
		if err := h.AddrAdd(lo, addr); err != nil {
			return fmt.Errorf("lab: %s: ip addr add %s dev lo: %w", l.vpcNS, a, err)
		}
	}
	for key, v := range map[string]string{
		"net.ipv4.ip_forward":             "1",
		"net.ipv4.conf.all.rp_filter":     "0",
		"net.ipv4.conf.default.rp_filter": "0",
	} {
		if err := sysctl(l.vpc, key, v); err != nil {
			return err
		}
	}
	if err := l.setupVPC6(h, lo, imds); err != nil {
		return err
	}
	// The instance behaves like a systemd distro (50-default.conf: loose reverse-path filter), not
	// like whatever the host happens to have, which a new namespace would inherit.
	for key, v := range map[string]string{
		"net.ipv4.conf.all.rp_filter":     "2",
		"net.ipv4.conf.default.rp_filter": "2",
	} {
		if err := sysctl(l.inst, key, v); err != nil {
			return err
		}
	}
	for _, ns := range []struct {
		name string
		h    func() (*netlink.Handle, error)
	}{
		{l.instNS, func() (*netlink.Handle, error) { return netlink.NewHandleAt(l.inst) }},
		{l.poolNS, func() (*netlink.Handle, error) { return netlink.NewHandleAt(l.pool) }},
	} {
		nh, err := ns.h()
		if err != nil {
			return fmt.Errorf("lab: netlink in %s: %w", ns.name, err)
		}
		lo, err := nh.LinkByName("lo")
		if err == nil {
			err = nh.LinkSetUp(lo)
		}
		nh.Close()
		if err != nil {
			return fmt.Errorf("lab: %s: ip link set lo up: %w", ns.name, err)
		}
	}
	return nil
}

// serveIMDS listens on 169.254.169.254:80 and/or [fd00:ec2::254]:80 inside the vpc namespace;
// the sockets keep that namespace, so the HTTP server itself runs on ordinary goroutines.
func (l *Lab) serveIMDS(endpoints IMDSEndpoints) error {
	var lns []net.Listener
	err := netnsx.Do(l.vpc, func() error {
		for _, a := range endpoints.addrs() {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	})
	if err != nil {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return fmt.Errorf("lab: fake IMDS listen in %s: %w", l.vpcNS, err)
	}
	l.httpSrv = &http.Server{Handler: l.imds, ReadHeaderTimeout: 5 * time.Second}
	for _, ln := range lns {
		go func() {
			if err := l.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				l.logf("lab %s: fake IMDS: %v", l.id, err)
			}
		}()
	}
	return nil
}

func (l *Lab) hostsPath() string { return filepath.Join(l.dir, "dhcp-hosts") }

// startDnsmasq runs the VPC's DHCP server. Static ranges only: an ENI gets exactly the address
// its hosts-file entry (= IMDS local-ipv4s[0]) says, or nothing, so tests can predict leases.
func (l *Lab) startDnsmasq(ctx context.Context) error {
	l.mu.Lock()
	err := l.writeHosts()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	args := []string{
		"ip", "netns", "exec", l.vpcNS, "dnsmasq",
		"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
		"--user=root", "--group=root",
		"--pid-file=" + filepath.Join(l.dir, "dnsmasq.pid"),
		"--dhcp-leasefile=" + filepath.Join(l.dir, "dnsmasq.leases"),
		"--dhcp-hostsfile=" + l.hostsPath(),
		"--interface=vpc*", "--bind-dynamic", "--dhcp-authoritative", "--no-ping",
		"--log-dhcp", "--log-facility=-",
		"--dhcp-option=option:mtu,9001",
	}
	for n := 0; n <= maxSlot; n++ {
		args = append(args,
			fmt.Sprintf("--dhcp-range=set:s%d,10.99.%d.0,static,255.255.255.0,1h", n, n),
			fmt.Sprintf("--dhcp-option=tag:s%d,option:router,10.99.%d.1", n, n))
	}
	args = append(args, dnsmasqArgs6()...)
	p, err := l.spawn("dnsmasq", args)
	if err != nil {
		return err
	}
	l.dnsmasq = p
	// The DHCP socket is bound before dnsmasq serves anything; /proc/PID/net is its namespace's view.
	return l.WaitFor(ctx, "dnsmasq listening on udp/67", 5*time.Second, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("dnsmasq exited: %s", p.tail())
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", p.Pid()))
		return err == nil && bytes.Contains(b, []byte(":0043 ")), nil
	})
}

// writeHosts renders the dnsmasq hosts file: each ENI's MAC to its primary addresses as IMDS
// currently says, or as it said when last published (detached ENIs keep their address, as on EC2).
// dnsmasq is reloaded only when the file changed. Callers hold l.mu.
func (l *Lab) writeHosts() error {
	sc := l.imds.Scenario()
	var lines []string
	for _, e := range l.enis {
		keys := e.keys
		// While IMDS still propagates an attach, DHCP already knows the ENI (as on EC2).
		if live, ok := sc.Interfaces[e.mac]; ok && len(live[core.KeyLocalIPv4s]) > 0 {
			keys = live
		}
		if line := hostLine(e.mac, keys); line != "" {
			lines = append(lines, line)
		}
	}
	sort.Strings(lines)
	content := strings.Join(lines, "\n") + "\n"
	if content == l.hosts {
		return nil
	}
	if err := os.WriteFile(l.hostsPath(), []byte(content), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	l.hosts = content
	if l.dnsmasq == nil {
		return nil
	}
	return l.reloadDnsmasq()
}

// reloadDnsmasq sends SIGHUP and waits until dnsmasq logged re-reading the hosts file, so that
// an ENI attached right after gets its deterministic lease.
func (l *Lab) reloadDnsmasq() error {
	marker := []byte("read " + l.hostsPath())
	before := bytes.Count([]byte(l.dnsmasq.Log()), marker)
	if err := l.dnsmasq.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("lab: reload dnsmasq: %w", err)
	}
	return l.WaitFor(context.Background(), "dnsmasq re-read its hosts file", 5*time.Second, func() (bool, error) {
		if l.dnsmasq.exited() {
			return false, fmt.Errorf("dnsmasq exited: %s", l.dnsmasq.tail())
		}
		return bytes.Count([]byte(l.dnsmasq.Log()), marker) > before, nil
	})
}

// syncVPC brings DHCP host entries and the source/destination check in line with the current
// scenario. Callers hold l.mu.
func (l *Lab) syncVPC(ctx context.Context) error {
	if err := l.writeHosts(); err != nil {
		return err
	}
	return l.syncSrcCheck(ctx)
}

// eniKeys is the IMDS data an ENI publishes when attached.
func eniKeys(spec ENISpec) map[string]scenario.Value {
	keys := map[string]scenario.Value{
		core.KeyDeviceNumber:   {fmt.Sprint(spec.DeviceNumber)},
		core.KeyNetworkCard:    {fmt.Sprint(spec.NetworkCard)},
		core.KeyInterfaceID:    {spec.InterfaceID},
		core.KeyLocalIPv4s:     append(scenario.Value(nil), spec.PrivateIPs...),
		core.KeySubnetIPv4CIDR: {fmt.Sprintf("10.99.%d.0/24", spec.Slot)},
		core.KeyVPCIPv4CIDRs:   {vpcCIDR},
	}
	if len(spec.IPv4Prefixes) > 0 {
		keys[core.KeyIPv4Prefix] = append(scenario.Value(nil), spec.IPv4Prefixes...)
	}
	addIPv6Keys(keys, spec)
	return keys
}

// BlockDHCP stops (block) or lets through again the DHCPv4 requests reaching the VPC's DHCP
// server from slot's subnet, so a test can hold a manager's activation in its IP configuration.
func (l *Lab) BlockDHCP(slot int, block bool) error {
	table := fmt.Sprintf("%s_dhcp%d", nftTable, slot)
	if !block {
		return run(context.Background(), "ip", "netns", "exec", l.vpcNS, "nft", "delete", "table", "ip", table)
	}
	rule := fmt.Sprintf("table ip %s { chain in { type filter hook input priority -10; iifname \"vpc%d\" udp dport 67 drop; }; }", table, slot)
	return run(context.Background(), "ip", "netns", "exec", l.vpcNS, "nft", rule)
}
