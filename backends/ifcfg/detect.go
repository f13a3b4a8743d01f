package ifcfg

import (
	"context"
	"fmt"
	"os"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/internal/dbusname"
)

// managerBusNames are the network managers that, when running, own the host's interfaces: where
// one of them runs, initscripts files are not what configures the ENIs, even if the directory
// exists (Fedora and EL 8 keep /etc/sysconfig/network-scripts for NetworkManager's ifcfg-rh).
var managerBusNames = []string{dbusname.NetworkManager, dbusname.Networkd}

// Detect reports whether this backend fits the host: the initscripts directory exists and
// neither NetworkManager nor systemd-networkd runs. It asks the bus rather than systemd, which
// works without systemd as PID 1 and activates nothing (NameHasOwner never starts a service).
// Without a bus (conn nil) neither manager can be running in a usable way, and only the
// directory decides.
func Detect(ctx context.Context, conn *dbus.Conn, dir string) (bool, string, error) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false, dir + " does not exist", nil
	}
	if conn == nil {
		return true, dir + " exists and there is no system bus, so neither NetworkManager nor systemd-networkd runs", nil
	}
	for _, name := range managerBusNames {
		owned, err := dbusname.HasOwner(ctx, conn, name)
		if err != nil {
			return false, "", fmt.Errorf("ifcfg: %w", err)
		}
		if owned {
			return false, name + " runs", nil
		}
	}
	return true, dir + " exists and neither NetworkManager nor systemd-networkd runs", nil
}
