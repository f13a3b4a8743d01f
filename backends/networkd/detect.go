package networkd

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Running reports whether systemd-networkd is running: its bus name has an owner. Asking the bus
// rather than systemd works where there is no systemd PID 1 (containers, the lab) and starts
// nothing, since NameHasOwner never activates a service.
func Running(ctx context.Context, conn *dbus.Conn) (bool, error) {
	var has bool
	err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, busName).Store(&has)
	if err != nil {
		return false, fmt.Errorf("networkd: ask the bus whether %s runs: %w", busName, err)
	}
	return has, nil
}
