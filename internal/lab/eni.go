package lab

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// ENISpec describes one simulated ENI.
type ENISpec struct {
	// Slot N selects the subnet 10.99.N.0/24 (router 10.99.N.1) and the vpc-side link vpcN; 0..40.
	Slot int
	// Name is the instance-side link name, e.g. ens5.
	Name string
	// MAC defaults to 02:00:00:99:NN:01.
	MAC          string
	DeviceNumber int
	NetworkCard  int
	// InterfaceID defaults to eni-<slot, zero padded to 17 digits>.
	InterfaceID string
	// PrivateIPs are local-ipv4s; the first is the primary, which DHCP hands out. They must lie
	// in the slot's subnet. Default 10.99.N.10.
	PrivateIPs   []string
	IPv4Prefixes []string
	// IPv6s are ipv6s, in the slot's subnet fd00:99:0:N::/64; the first is the one DHCPv6 hands
	// out. IPv6s, IPv6Prefixes (ipv6-prefix, e.g. an /80) or IPv6Subnet make the subnet dual-stack:
	// the router advertises it and IMDS lists subnet-ipv6-cidr-blocks and vpc-ipv6-cidr-blocks.
	IPv6s        []string
	IPv6Prefixes []string
	IPv6Subnet   bool
	// IPv6Only puts the ENI in an IPv6-only subnet: no local-ipv4s, no subnet-ipv4-cidr-block, no
	// DHCPv4 lease. PrivateIPs must be empty and IPv6s not.
	IPv6Only bool
	// Attached attaches the ENI right away (see Attach).
	Attached bool
	// OmitNetworkCard leaves network-card out of IMDS (it then answers 404), as for the
	// primary and some card-0 ENIs of multi-card instances whose other ENIs have the key.
	OmitNetworkCard bool
}

type eni struct {
	spec ENISpec
	mac  string // canonical lower case
	// keys is what the ENI publishes in IMDS when attached: the spec's data, later whatever IMDS
	// held when it was detached, so UpdateIMDS changes survive a detach/attach cycle (as on EC2).
	keys     map[string]scenario.Value
	attached bool
}

func (e *eni) vpcName() string { return fmt.Sprintf("vpc%d", e.spec.Slot) }

func (s *ENISpec) normalize() error {
	if s.Slot < 0 || s.Slot > maxSlot {
		return fmt.Errorf("lab: ENI %s: slot %d outside 0..%d", s.Name, s.Slot, maxSlot)
	}
	if s.Name == "" || len(s.Name) > 15 || strings.ContainsAny(s.Name, "/ \t\n") {
		return fmt.Errorf("lab: ENI slot %d: invalid link name %q", s.Slot, s.Name)
	}
	if s.MAC == "" {
		s.MAC = fmt.Sprintf("02:00:00:99:%02x:01", s.Slot)
	}
	hw, err := net.ParseMAC(s.MAC)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("lab: ENI %s: invalid MAC %q", s.Name, s.MAC)
	}
	s.MAC = hw.String()
	if s.InterfaceID == "" {
		s.InterfaceID = fmt.Sprintf("eni-%017d", s.Slot)
	}
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(s.Slot), 0}), 24)
	if len(s.PrivateIPs) == 0 && !s.IPv6Only {
		s.PrivateIPs = []string{fmt.Sprintf("10.99.%d.10", s.Slot)}
	}
	for _, ip := range s.PrivateIPs {
		a, err := netip.ParseAddr(ip)
		if err != nil || !subnet.Contains(a) || a == subnet.Addr() || a.As4()[3] <= 3 || a.As4()[3] == 255 {
			return fmt.Errorf("lab: ENI %s: private IP %q is not a host address of %s (.1-.3 are the VPC's)", s.Name, ip, subnet)
		}
	}
	for _, p := range s.IPv4Prefixes {
		pp, err := netip.ParsePrefix(p)
		if err != nil || !subnet.Contains(pp.Addr()) || pp.Bits() < 24 {
			return fmt.Errorf("lab: ENI %s: IPv4 prefix %q not inside %s", s.Name, p, subnet)
		}
	}
	s.PrivateIPs = slices.Clone(s.PrivateIPs)
	s.IPv4Prefixes = slices.Clone(s.IPv4Prefixes)
	s.IPv6s = slices.Clone(s.IPv6s)
	s.IPv6Prefixes = slices.Clone(s.IPv6Prefixes)
	return s.normalizeIPv6()
}

// AddENI creates the ENI, detached: the veth pair vpcN (router side, 10.99.N.1/24) and spec.Name
// parked in the pool namespace, plus its DHCP host entry. With spec.Attached it then attaches it.
func (l *Lab) AddENI(spec ENISpec) error {
	if err := spec.normalize(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("lab: AddENI %s: lab closed", spec.Name)
	}
	for _, e := range l.enis {
		switch {
		case e.spec.Name == spec.Name:
			return fmt.Errorf("lab: ENI %s exists", spec.Name)
		case e.spec.Slot == spec.Slot:
			return fmt.Errorf("lab: ENI %s: slot %d is used by %s", spec.Name, spec.Slot, e.spec.Name)
		case e.mac == spec.MAC:
			return fmt.Errorf("lab: ENI %s: MAC %s is used by %s", spec.Name, spec.MAC, e.spec.Name)
		}
	}
	e := &eni{spec: spec, mac: spec.MAC, keys: eniKeys(spec)}
	if spec.OmitNetworkCard {
		delete(e.keys, core.KeyNetworkCard)
	}
	if err := l.createVeth(e); err != nil {
		return err
	}
	l.enis[spec.Name] = e
	if err := l.syncVPC(context.Background()); err != nil {
		return err
	}
	if spec.Attached {
		return l.attachLocked(e)
	}
	return nil
}

func (l *Lab) createVeth(e *eni) error {
	h, err := netlink.NewHandleAt(l.vpc)
	if err != nil {
		return fmt.Errorf("lab: netlink in %s: %w", l.vpcNS, err)
	}
	defer h.Close()
	hw, _ := net.ParseMAC(e.mac)
	// Created inside the vpc namespace with the peer placed straight into the pool: nothing ever
	// appears in the root namespace. The instance side starts at 1500 like an ENA device; DHCP
	// raises it to 9001.
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: e.vpcName(), MTU: 9001},
		PeerName:         e.spec.Name,
		PeerHardwareAddr: hw,
		PeerMTU:          1500,
		PeerNamespace:    netlink.NsFd(int(l.pool)),
	}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("lab: %s: ip link add %s type veth peer name %s netns %s: %w",
			l.vpcNS, e.vpcName(), e.spec.Name, l.poolNS, err)
	}
	link, err := h.LinkByName(e.vpcName())
	if err != nil {
		return fmt.Errorf("lab: %s: %w", e.vpcName(), err)
	}
	gw, _ := netlink.ParseAddr(fmt.Sprintf("10.99.%d.1/24", e.spec.Slot))
	if err := h.AddrAdd(link, gw); err != nil {
		return fmt.Errorf("lab: %s: ip addr add %s dev %s: %w", l.vpcNS, gw, e.vpcName(), err)
	}
	if err := l.addRouter6(h, link, e); err != nil {
		return err
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("lab: %s: ip link set %s up: %w", l.vpcNS, e.vpcName(), err)
	}
	return nil
}

// Attach publishes the ENI in IMDS, then moves its link into the instance — the order EC2 uses,
// so an agent reacting to the new link finds the metadata.
func (l *Lab) Attach(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.enis[name]
	if !ok {
		return fmt.Errorf("lab: attach %s: no such ENI", name)
	}
	return l.attachLocked(e)
}

func (l *Lab) attachLocked(e *eni) error {
	if e.attached {
		return fmt.Errorf("lab: attach %s: already attached", e.spec.Name)
	}
	keys := cloneKeys(e.keys)
	l.imds.Update(func(s *scenario.Scenario) {
		if s.Interfaces == nil {
			s.Interfaces = map[string]map[string]scenario.Value{}
		}
		s.Interfaces[e.mac] = keys
		if s.MAC == "" && e.spec.DeviceNumber == 0 && e.spec.NetworkCard == 0 {
			s.MAC = e.mac
		}
	})
	if err := l.syncVPC(context.Background()); err != nil {
		return err
	}
	if err := moveLink(l.pool, l.poolNS, l.inst, e.mac, ""); err != nil {
		return fmt.Errorf("lab: attach %s: %w", e.spec.Name, err)
	}
	e.attached = true
	return nil
}

// Detach moves the link back to the pool, then removes the ENI from IMDS (EC2 order). The link is
// found by MAC, so a test may have renamed it; it gets its spec name back in the pool.
func (l *Lab) Detach(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.enis[name]
	if !ok {
		return fmt.Errorf("lab: detach %s: no such ENI", name)
	}
	if !e.attached {
		return fmt.Errorf("lab: detach %s: not attached", name)
	}
	if err := moveLink(l.inst, l.instNS, l.pool, e.mac, e.spec.Name); err != nil {
		return fmt.Errorf("lab: detach %s: %w", name, err)
	}
	e.attached = false
	l.imds.Update(func(s *scenario.Scenario) {
		if keys, ok := s.Interfaces[e.mac]; ok {
			e.keys = cloneKeys(keys)
		}
		delete(s.Interfaces, e.mac)
	})
	return l.syncVPC(context.Background())
}

// UpdateIMDS changes what the fake IMDS serves (e.g. adds a secondary IP) and brings the VPC's
// DHCP host entries and source/destination check in line.
func (l *Lab) UpdateIMDS(f func(*scenario.Scenario)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("lab: UpdateIMDS: lab closed")
	}
	l.imds.Update(f)
	return l.syncVPC(context.Background())
}

// moveLink moves the link with MAC mac from one namespace to another (`ip link set DEV netns NS`),
// renaming it to rename afterwards when given and different.
func moveLink(from netns.NsHandle, fromName string, to netns.NsHandle, mac, rename string) error {
	h, err := netlink.NewHandleAt(from)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", fromName, err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("%s: ip link: %w", fromName, err)
	}
	var link netlink.Link
	for _, c := range links {
		if c.Attrs().HardwareAddr.String() == mac && c.Type() == "veth" {
			link = c
		}
	}
	if link == nil {
		return fmt.Errorf("no link with MAC %s in %s", mac, fromName)
	}
	if err := h.LinkSetNsFd(link, int(to)); err != nil {
		return fmt.Errorf("ip link set %s netns: %w", link.Attrs().Name, err)
	}
	if rename == "" || rename == link.Attrs().Name {
		return nil
	}
	th, err := netlink.NewHandleAt(to)
	if err != nil {
		return err
	}
	defer th.Close()
	moved, err := th.LinkByName(link.Attrs().Name)
	if err != nil {
		return err
	}
	return th.LinkSetName(moved, rename)
}

func cloneKeys(keys map[string]scenario.Value) map[string]scenario.Value {
	out := make(map[string]scenario.Value, len(keys))
	for k, v := range maps.All(keys) {
		out[k] = slices.Clone(v)
	}
	return out
}
