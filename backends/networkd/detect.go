package networkd

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/internal/dbusname"
)

// Running reports whether systemd-networkd is running: its bus name has an owner. Asking the bus
// rather than systemd works where there is no systemd PID 1 (containers, the lab) and starts
// nothing, since NameHasOwner never activates a service.
func Running(ctx context.Context, conn *dbus.Conn) (bool, error) {
	has, err := dbusname.HasOwner(ctx, conn, busName)
	if err != nil {
		return false, fmt.Errorf("networkd: %w", err)
	}
	return has, nil
}
