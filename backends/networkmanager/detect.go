package networkmanager

import (
	"context"
	"errors"
	"fmt"

	gonm "github.com/Wifx/gonetworkmanager/v3"
	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Managed returns the names of the links NetworkManager manages: it has a device for the link
// and the device is not in the unmanaged state. On a host where NM runs next to another manager
// (netplan marks the links it gives networkd unmanaged in NM), this tells whose the ENIs are.
func Managed(ctx context.Context, conn *dbus.Conn, links []core.Link) ([]string, error) {
	c := dbusNM{conn: conn}
	var managed []string
	for _, l := range links {
		d, err := c.Device(ctx, l.Name)
		if errors.Is(err, errUnknownDevice) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("networkmanager: %s: %w", l.Name, err)
		}
		if d.State > gonm.NmDeviceStateUnmanaged {
			managed = append(managed, l.Name)
		}
	}
	return managed, nil
}
