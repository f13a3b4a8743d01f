package lab

import (
	"context"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ec2-net-utils/ec2-net-utils/internal/netnsx"
)

// Container is a network namespace wired into the instance by a veth pair, the way a CNI plugin
// wires a pod or Docker a container: HostVeth in the instance, eth0 inside, both up, nothing
// else configured (the test plays the CNI or Docker). The namespace has no name: it lives as long
// as the Container is open, and goes away with its veth pair on Close or when the test process
// exits, so it can never leak.
type Container struct {
	ns       netns.NsHandle
	HostVeth string
}

// NewContainer creates a container whose veth is named hostVeth in the instance.
func (l *Lab) NewContainer(hostVeth string) (*Container, error) {
	ns, err := netnsx.New()
	if err != nil {
		return nil, fmt.Errorf("lab: container %s: %w", hostVeth, err)
	}
	c := &Container{ns: ns, HostVeth: hostVeth}
	if err := l.wireContainer(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (l *Lab) wireContainer(c *Container) error {
	h, err := l.InstanceNetlink()
	if err != nil {
		return err
	}
	defer h.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: c.HostVeth}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(c.ns))}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("lab: %s: ip link add %s type veth peer name eth0 netns <container>: %w", l.instNS, c.HostVeth, err)
	}
	host, err := h.LinkByName(c.HostVeth)
	if err == nil {
		err = h.LinkSetUp(host)
	}
	if err != nil {
		return fmt.Errorf("lab: %s: ip link set %s up: %w", l.instNS, c.HostVeth, err)
	}
	ch, err := c.Netlink()
	if err != nil {
		return err
	}
	defer ch.Close()
	for _, name := range []string{"lo", "eth0"} {
		link, err := ch.LinkByName(name)
		if err == nil {
			err = ch.LinkSetUp(link)
		}
		if err != nil {
			return fmt.Errorf("lab: container %s: ip link set %s up: %w", c.HostVeth, name, err)
		}
	}
	return nil
}

// Netlink opens a netlink handle inside the container; the caller closes it.
func (c *Container) Netlink() (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(c.ns)
	if err != nil {
		return nil, fmt.Errorf("lab: netlink in container %s: %w", c.HostVeth, err)
	}
	return h, nil
}

// Ping is Lab.Ping from inside the container.
func (c *Container) Ping(ctx context.Context, src, dst string) error {
	return ping(ctx, c.ns, src, dst)
}

// Listen opens a TCP listener inside the container (the socket keeps its namespace).
func (c *Container) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := netnsx.Do(c.ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: listen on %s in container %s: %w", addr, c.HostVeth, err)
	}
	return ln, nil
}

// Close removes the container and its veth pair. It is idempotent.
func (c *Container) Close() {
	if c.ns.IsOpen() {
		_ = c.ns.Close()
		c.ns = netns.None()
	}
}

// DialFromInternet opens a TCP connection to addr from the lab's internet address, through the
// VPC router: what a client outside the VPC does to reach a published port.
func (l *Lab) DialFromInternet(ctx context.Context, addr string) (net.Conn, error) {
	var conn net.Conn
	err := netnsx.Do(l.vpc, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(internetAddr)}}
		var err error
		conn, err = d.DialContext(ctx, "tcp4", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: connect to %s from %s: %w", addr, internetAddr, err)
	}
	return conn, nil
}

// InstanceSysctl writes a net sysctl inside the instance ("net.ipv4.ip_forward"), as a CNI
// plugin or Docker does on a real host.
func (l *Lab) InstanceSysctl(key, value string) error { return sysctl(l.inst, key, value) }
