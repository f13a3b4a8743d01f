package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/internal/dbusname"
)

// Network managers the lab can run in the instance.
const (
	ManagerNetworkd       = "networkd"
	ManagerNetworkManager = "networkmanager"
	ManagerNone           = "none" // backends that drive dhclient themselves
)

// nmConf keeps NetworkManager away from everything but the ENIs: no auto-created profiles, no
// resolv.conf or hostname changes, no polkit (absent here), no connectivity checks.
const nmConf = `[main]
plugins=keyfile
no-auto-default=*
dns=none
rc-manager=unmanaged
hostname-mode=none
auth-polkit=false
dhcp=internal

[connectivity]
enabled=false

[keyfile]
unmanaged-devices=except:interface-name:ens*;except:interface-name:eth*
`

const managerReady = 15 * time.Second

// StartManager starts the instance's network manager and waits until it is ready: networkd owns
// org.freedesktop.network1; NetworkManager owns org.freedesktop.NetworkManager and lists devices.
// Install configuration (WriteInstanceFile) before. For NetworkManager a NetworkManager.conf is
// written unless the test wrote one. "none" starts nothing.
func (l *Lab) StartManager(kind string) error {
	l.mu.Lock()
	running := l.manager != nil && !l.manager.exited()
	l.mu.Unlock()
	if running {
		return fmt.Errorf("lab: start %s: %s is running", kind, l.managerKind)
	}
	var (
		name, busName string
		args          []string
		extra         func(*dbus.Conn) (bool, error)
	)
	switch kind {
	case ManagerNone:
		l.mu.Lock()
		l.manager, l.managerKind = nil, kind
		l.mu.Unlock()
		return nil
	case ManagerNetworkd:
		// networkd drops to user systemd-network by itself; debug logs make failed e2e runs readable.
		name, busName = "networkd", dbusname.Networkd
		args = []string{"env", "SYSTEMD_LOG_LEVEL=debug", "/lib/systemd/systemd-networkd"}
	case ManagerNetworkManager:
		if _, err := os.Stat(filepath.Join(l.dir, etcUpper, "NetworkManager", "NetworkManager.conf")); errors.Is(err, os.ErrNotExist) {
			if err := l.WriteInstanceFile("/etc/NetworkManager/NetworkManager.conf", nmConf, 0o644); err != nil {
				return err
			}
		}
		// --debug keeps NM in the foreground and logging to stderr (there is no journal here).
		name, busName = "NetworkManager", dbusname.NetworkManager
		args = []string{"NetworkManager", "--no-daemon", "--debug"}
		extra = l.nmKnowsAllLinks
	default:
		return fmt.Errorf("lab: unknown manager %q (want %s, %s or %s)", kind, ManagerNetworkd, ManagerNetworkManager, ManagerNone)
	}
	p, err := l.Start(name, args...)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.manager, l.managerKind = p, kind
	l.mu.Unlock()
	conn, err := l.dialBus()
	if err != nil {
		return fmt.Errorf("lab: start %s: %w", kind, err)
	}
	defer conn.Close()
	err = l.WaitFor(context.Background(), name+" ready on D-Bus", managerReady, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("%s exited: %s", name, p.tail())
		}
		owned, err := dbusname.HasOwner(context.Background(), conn, busName)
		if err != nil {
			return false, err
		}
		if !owned || extra == nil {
			return owned, nil
		}
		return extra(conn)
	})
	if err != nil {
		return fmt.Errorf("lab: %w (log %s)", err, p.logPath)
	}
	return nil
}

// nmKnowsAllLinks: NM lists a device for every link in the instance, so a test that talks to NM
// right after StartManager finds its ENIs.
func (l *Lab) nmKnowsAllLinks(conn *dbus.Conn) (bool, error) {
	var devs []dbus.ObjectPath
	err := conn.Object("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager").
		Call("org.freedesktop.NetworkManager.GetDevices", 0).Store(&devs)
	if err != nil {
		return false, nil // NM owns its name slightly before its objects are exported
	}
	h, err := l.InstanceNetlink()
	if err != nil {
		return false, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return false, fmt.Errorf("instance ip link: %w", err)
	}
	return len(devs) > 0 && len(devs) >= len(links), nil
}

// Manager is the running manager process, nil for "none" or before StartManager.
func (l *Lab) Manager() *Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.manager
}

// StopManager stops the manager (SIGTERM; configuration stays in the kernel, as on a real host).
func (l *Lab) StopManager() error {
	l.mu.Lock()
	p, kind := l.manager, l.managerKind
	l.manager = nil
	l.mu.Unlock()
	if p == nil {
		if kind == ManagerNone {
			return nil
		}
		return errors.New("lab: no manager running")
	}
	return p.Stop()
}

// RestartManager stops and starts the same manager again.
func (l *Lab) RestartManager() error {
	l.mu.Lock()
	kind := l.managerKind
	l.mu.Unlock()
	if kind == "" {
		return errors.New("lab: no manager was started")
	}
	if err := l.StopManager(); err != nil {
		return fmt.Errorf("lab: restart %s: %w", kind, err)
	}
	return l.StartManager(kind)
}
