package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
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
	default:
		return fmt.Errorf("lab: no setup for backend %q", backend)
	}
}

// AgentConfig is the agent's configuration file for a lab run: the backend, the lab's fake IMDS
// (169.254.169.254 exists only inside the lab's VPC namespace), veth as the ENI driver, and
// extra lines for the [interfaces] table.
func AgentConfig(backend, refreshInterval, interfaces string) string {
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
`, backend, refreshInterval, interfaces)
}

// CallCounter counts D-Bus method calls on the lab's bus that match a rule, with a D-Bus
// monitor: evidence of reloads that does not depend on the agent's own logs.
type CallCounter struct {
	conn  *dbus.Conn
	count atomic.Int64
}

// CountCalls starts counting method calls to interface.member on the lab's bus.
func (l *Lab) CountCalls(iface, member string) (*CallCounter, error) {
	conn, err := dbus.Connect(l.BusAddress())
	if err != nil {
		return nil, fmt.Errorf("lab: connect to the bus: %w", err)
	}
	match := fmt.Sprintf("type='method_call',interface='%s',member='%s'", iface, member)
	if err := conn.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, []string{match}, uint32(0)).Err; err != nil {
		conn.Close()
		return nil, fmt.Errorf("lab: become a D-Bus monitor: %w", err)
	}
	c := &CallCounter{conn: conn}
	ch := make(chan *dbus.Message, 16)
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
func (c *CallCounter) N() int64 { return c.count.Load() }

// Close stops counting.
func (c *CallCounter) Close() error { return c.conn.Close() }

// CountReloads counts what a backend does to make its manager re-apply configuration, as seen on
// the bus: networkd's Manager.Reload. Tests and the benchmark assert "no reload" with it.
func (l *Lab) CountReloads(backend string) (*CallCounter, error) {
	switch backend {
	case "networkd":
		return l.CountCalls("org.freedesktop.network1.Manager", "Reload")
	default:
		return nil, fmt.Errorf("lab: no reload counter for backend %q", backend)
	}
}
