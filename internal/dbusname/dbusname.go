// Package dbusname tells whether a service runs by asking the bus whether its name has an owner.
// That works where systemd is not PID 1 (containers, the lab) and starts nothing: NameHasOwner
// never activates a service.
package dbusname

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// The bus names of the network managers the agent drives or steps aside for.
const (
	Networkd       = "org.freedesktop.network1"
	NetworkManager = "org.freedesktop.NetworkManager"
)

// HasOwner reports whether a connection owns name on the bus.
func HasOwner(ctx context.Context, conn *dbus.Conn, name string) (bool, error) {
	var has bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has); err != nil {
		return false, fmt.Errorf("ask the bus whether %s runs: %w", name, err)
	}
	return has, nil
}
