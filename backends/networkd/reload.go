package networkd

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/internal/dbusname"
)

// networkd's D-Bus API (org.freedesktop.network1(5)).
const (
	busName          = dbusname.Networkd
	objectPath       = dbus.ObjectPath("/org/freedesktop/network1")
	managerInterface = "org.freedesktop.network1.Manager"
)

// Reloader makes networkd re-read its configuration files, or reconfigure one link with the files
// it has.
type Reloader interface {
	Reload(ctx context.Context) error
	ReconfigureLink(ctx context.Context, ifindex int) error
}

// DBusReloader reloads networkd with Manager.Reload, what `networkctl reload` does. networkd
// then re-applies only the links whose .network (or drop-ins) changed. Never a signal: networkd
// 252 has no SIGHUP handler and dies of it.
type DBusReloader struct {
	conn *dbus.Conn
}

// NewDBusReloader returns a Reloader on a system-bus connection the caller owns.
func NewDBusReloader(conn *dbus.Conn) *DBusReloader { return &DBusReloader{conn: conn} }

// Reload implements Reloader. It returns when networkd has re-read its files, or when ctx ends.
func (r *DBusReloader) Reload(ctx context.Context) error {
	call := r.conn.Object(busName, objectPath).CallWithContext(ctx, managerInterface+".Reload", 0)
	if call.Err != nil {
		return fmt.Errorf("networkd: %s.Reload: %w", managerInterface, call.Err)
	}
	return nil
}

// ReconfigureLink implements Reloader with Manager.ReconfigureLink, what `networkctl reconfigure`
// does: networkd drops the link's configuration and applies its .network file again, DHCP
// included.
func (r *DBusReloader) ReconfigureLink(ctx context.Context, ifindex int) error {
	call := r.conn.Object(busName, objectPath).CallWithContext(ctx, managerInterface+".ReconfigureLink", 0, int32(ifindex))
	if call.Err != nil {
		return fmt.Errorf("networkd: %s.ReconfigureLink(%d): %w", managerInterface, ifindex, call.Err)
	}
	return nil
}
