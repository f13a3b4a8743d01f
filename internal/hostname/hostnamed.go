package hostname

import (
	"context"

	"github.com/godbus/dbus/v5"
)

// Hostnamed sets the host name through systemd-hostnamed (org.freedesktop.hostname1), as
// hostnamectl does: it writes /etc/hostname and sets the kernel's name, so the caller needs no
// write access to /etc. Available since systemd 195; the caller needs CAP_SYS_ADMIN (or polkit's
// consent), which the ec2-net-utils-hostname.service unit grants.
type Hostnamed struct {
	Conn *dbus.Conn
}

const (
	hostnamedName = "org.freedesktop.hostname1"
	hostnamedPath = "/org/freedesktop/hostname1"
)

// SetHostname sets the static name (persistent) and the current one.
func (h Hostnamed) SetHostname(ctx context.Context, name string) error {
	obj := h.Conn.Object(hostnamedName, hostnamedPath)
	for _, method := range []string{"SetStaticHostname", "SetHostname"} {
		// interactive=false: never wait for a polkit password prompt.
		if err := obj.CallWithContext(ctx, hostnamedName+"."+method, 0, name, false).Err; err != nil {
			return err
		}
	}
	return nil
}
