package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netlink"
)

// SetupBackend installs into the instance what the package installs for a backend — from the
// repository's packaging/ directory, adapted to the lab's veth links — and starts that backend's
// network manager. repoRoot is the repository checkout.
func (l *Lab) SetupBackend(backend, repoRoot string) error {
	switch backend {
	case "networkd":
		base, err := os.ReadFile(filepath.Join(repoRoot, "packaging/systemd/network/80-ec2.network"))
		if err != nil {
			return fmt.Errorf("lab: networkd base file: %w", err)
		}
		// The lab's ENIs are veths; everything else stays as shipped.
		adapted := strings.Replace(string(base), "Driver=ena ixgbevf vif", "Driver=veth", 1)
		if adapted == string(base) {
			return fmt.Errorf("lab: packaging/systemd/network/80-ec2.network has no 'Driver=ena ixgbevf vif' line to adapt")
		}
		dropin, err := os.ReadFile(filepath.Join(repoRoot, "packaging/systemd/networkd.conf.d/80-ec2-net-utils.conf"))
		if err != nil {
			return fmt.Errorf("lab: networkd.conf.d drop-in: %w", err)
		}
		if err := l.WriteInstanceFile("/etc/systemd/network/80-ec2.network", adapted, 0o644); err != nil {
			return err
		}
		if err := l.WriteInstanceFile("/etc/systemd/networkd.conf.d/80-ec2-net-utils.conf", string(dropin), 0o644); err != nil {
			return err
		}
		return l.StartManager(ManagerNetworkd)
	case "networkmanager":
		return l.setupNetworkManager(repoRoot)
	case "ifcfg":
		return l.setupIfcfg(repoRoot)
	default:
		return fmt.Errorf("lab: no setup for backend %q", backend)
	}
}

// setupNetworkManager installs the package's NetworkManager files into the instance — the conf.d
// drop-in and the base profile, with the ENI drivers replaced by the lab's veth — and starts
// NetworkManager (which also gets the lab's own NetworkManager.conf, see StartManager).
func (l *Lab) setupNetworkManager(repoRoot string) error {
	files := []struct {
		pkg, dst, from, to string
		mode               os.FileMode
	}{
		{"packaging/NetworkManager/conf.d/80-ec2-net-utils.conf", "/etc/NetworkManager/conf.d/80-ec2-net-utils.conf",
			"driver:ena,driver:ixgbevf,driver:vif", "driver:veth", 0o644},
		// NM ignores a keyfile that others can read.
		{"packaging/NetworkManager/system-connections/ec2-net-utils-default.nmconnection",
			"/etc/NetworkManager/system-connections/ec2-net-utils-default.nmconnection",
			"driver=ena;ixgbevf;vif;", "driver=veth;", 0o600},
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repoRoot, f.pkg))
		if err != nil {
			return fmt.Errorf("lab: NetworkManager file: %w", err)
		}
		adapted := strings.Replace(string(b), f.from, f.to, 1)
		if adapted == string(b) {
			return fmt.Errorf("lab: %s has no %q to adapt", f.pkg, f.from)
		}
		if err := l.WriteInstanceFile(f.dst, adapted, f.mode); err != nil {
			return err
		}
	}
	return l.StartManager(ManagerNetworkManager)
}

// AgentConfig is the agent's configuration file for a lab run: the backend, the lab's fake IMDS
// (169.254.169.254 exists only inside the lab's VPC namespace), veth as the ENI driver, extra
// lines for the [interfaces] table, and the ifcfg backend's settings for the lab (IfcfgScript,
// no broadcast renewals).
func AgentConfig(backend, refreshInterval, interfaces string) string {
	// The [ifcfg] table goes to every backend's file: "auto" may pick ifcfg, and the others ignore it.
	return fmt.Sprintf(`# ec2-net-utils in a lab: the fake IMDS answers on 169.254.169.254 inside the lab's VPC namespace only
backend = %q
log_level = "debug"
refresh_interval = %q

[imds]
endpoint = "http://169.254.169.254"
timeout = "1s"
max_attempts = 2
propagation_timeout = "5s"

[interfaces]
drivers = ["veth"]
%s

[daemon]
rule_restore_interval = "1s"
%s`, backend, refreshInterval, interfaces, ifcfgAgentConfig)
}

// CallCounter counts D-Bus method calls on the lab's bus that match a rule, with a D-Bus
// monitor: evidence of reloads that does not depend on the agent's own logs.
type CallCounter struct {
	conn  *dbus.Conn
	count atomic.Int64
	// read, when set, counts from another source than the bus (ifcfg: dhclient starts).
	read func() int64
}

// CountCalls starts counting method calls to interface.member on the lab's bus.
func (l *Lab) CountCalls(iface, member string) (*CallCounter, error) {
	return l.countCalls([2]string{iface, member})
}

// countCalls counts method calls to any of the {interface, member} pairs.
func (l *Lab) countCalls(methods ...[2]string) (*CallCounter, error) {
	conn, err := dbus.Connect(l.BusAddress())
	if err != nil {
		return nil, fmt.Errorf("lab: connect to the bus: %w", err)
	}
	var matches []string
	for _, m := range methods {
		matches = append(matches, fmt.Sprintf("type='method_call',interface='%s',member='%s'", m[0], m[1]))
	}
	if err := conn.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, matches, uint32(0)).Err; err != nil {
		conn.Close()
		return nil, fmt.Errorf("lab: become a D-Bus monitor: %w", err)
	}
	c := &CallCounter{conn: conn}
	// godbus drops messages when this channel is full; a reload burst must not go uncounted.
	ch := make(chan *dbus.Message, 1024)
	conn.Eavesdrop(ch)
	go func() {
		for m := range ch {
			if m.Type == dbus.TypeMethodCall {
				c.count.Add(1)
			}
		}
	}()
	return c, nil
}

// N is the number of calls seen so far.
func (c *CallCounter) N() int64 {
	if c.read != nil {
		return c.read()
	}
	return c.count.Load()
}

// Close stops counting.
func (c *CallCounter) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// CountReloads counts what a backend does to make its manager re-apply configuration, as seen on
// the bus: networkd's Manager.Reload; for ifcfg the dhclients started (from the script's runs); for NetworkManager every call that (re)configures a
// device — Device.Reapply, ActivateConnection, AddAndActivateConnection(2). Adding, updating or
// deleting a profile is not counted: it changes no device by itself (NM may autoconnect a new
// profile on an idle device, which the agent does not count either). Tests and the benchmark
// assert "no reload" with it.
func (l *Lab) CountReloads(backend string) (*CallCounter, error) {
	switch backend {
	case "networkd":
		return l.CountCalls("org.freedesktop.network1.Manager", "Reload")
	case "networkmanager":
		const nm = "org.freedesktop.NetworkManager"
		return l.countCalls([2]string{nm + ".Device", "Reapply"}, [2]string{nm, "ActivateConnection"},
			[2]string{nm, "AddAndActivateConnection"}, [2]string{nm, "AddAndActivateConnection2"})
	case "ifcfg":
		// The backend's reload is a dhclient (re)start; the lab's wrapper of the dhclient script
		// sees each one, whoever starts it.
		base := l.countScriptStarts()
		return &CallCounter{read: func() int64 { return l.countScriptStarts() - base }}, nil
	default:
		return nil, fmt.Errorf("lab: no reload counter for backend %q", backend)
	}
}

// DeletedAddrs records the IPv4 addresses deleted in the instance since WatchDeletedAddrs.
type DeletedAddrs struct {
	mu      sync.Mutex
	deleted []netip.Prefix
	done    chan struct{}
}

// WatchDeletedAddrs starts recording every IPv4 address deleted in the instance (netlink
// RTM_DELADDR), to prove a change never took an address away. Stop it with Close.
func (l *Lab) WatchDeletedAddrs() (*DeletedAddrs, error) {
	ch := make(chan netlink.AddrUpdate, 64)
	w := &DeletedAddrs{done: make(chan struct{})}
	ns := l.InstanceNS()
	if err := netlink.AddrSubscribeWithOptions(ch, w.done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		return nil, fmt.Errorf("lab: watch addresses: %w", err)
	}
	go func() {
		for u := range ch {
			if u.NewAddr || u.LinkAddress.IP.To4() == nil {
				continue
			}
			a, _ := netip.AddrFromSlice(u.LinkAddress.IP.To4())
			bits, _ := u.LinkAddress.Mask.Size()
			w.mu.Lock()
			w.deleted = append(w.deleted, netip.PrefixFrom(a, bits))
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// IPs are the deleted addresses ("10.99.1.20"), in the order they went.
func (w *DeletedAddrs) IPs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.deleted))
	for _, p := range w.deleted {
		out = append(out, p.Addr().String())
	}
	return out
}

// Prefixes are the deleted addresses with their prefix length ("10.99.1.20/32").
func (w *DeletedAddrs) Prefixes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.deleted))
	for _, p := range w.deleted {
		out = append(out, p.String())
	}
	return out
}

// Close stops recording.
func (w *DeletedAddrs) Close() { close(w.done) }
