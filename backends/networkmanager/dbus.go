package networkmanager

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v3"
	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/internal/dbusname"
)

// The D-Bus calls go through godbus on a connection the caller passes in, with the names and
// enums of github.com/Wifx/gonetworkmanager. Its own objects are of no use here: every one of
// them talks over the process-wide dbus.SystemBus() (so no private bus for tests and the lab,
// and no second NetworkManager), none takes a context (so no call is bounded), GetSettings
// returns map[string]interface{} (which loses the D-Bus types NM insists on, e.g. a route's
// table as u), and it has no GetAppliedConnection, AddConnection2, Update2 or
// AddAndActivateConnection2.

// Errors the D-Bus client maps NM's error names to.
var (
	errUnknownDevice   = errors.New("NetworkManager has no device for this interface")
	errVersionMismatch = errors.New("the applied connection changed in the meantime")
	errNotActive       = errors.New("the device is not activated")
)

// callTimeout bounds every call: NM answers in milliseconds, but a stuck NM must not stall the
// daemon's loop.
const callTimeout = 10 * time.Second

const (
	nmDest         = dbusname.NetworkManager
	nmPath         = dbus.ObjectPath(gonm.NetworkManagerObjectPath)
	settingsPath   = dbus.ObjectPath(gonm.SettingsObjectPath)
	propertiesIfce = "org.freedesktop.DBus.Properties"
	noObject       = dbus.ObjectPath("/")

	// NM_SETTINGS_ADD_CONNECTION2_FLAG_* and NM_SETTINGS_UPDATE2_FLAG_*.
	add2ToDisk          = uint32(0x1)
	add2InMemory        = uint32(0x2)
	update2ToDisk       = uint32(0x1)
	update2InMemoryOnly = uint32(0x8) // IN_MEMORY_ONLY: also deletes a copy on disk

	// NM_SETTINGS_CONNECTION_FLAG_UNSAVED.
	connFlagUnsaved = uint32(0x1)
)

// profile is one connection profile NM knows.
type profile struct {
	Path     dbus.ObjectPath
	Settings Settings
}

// device is what Apply needs to know about an NM device.
type device struct {
	Path        dbus.ObjectPath
	State       gonm.NmDeviceState
	Autoconnect bool
	// Active is the settings path of the profile the device runs (or is activating), "" for none.
	Active    dbus.ObjectPath
	Available []dbus.ObjectPath
	Ip6Config dbus.ObjectPath
}

// nmAPI is the part of NetworkManager's D-Bus API the backend uses. dbusNM implements it; the
// tests use a model of NM.
type nmAPI interface {
	Version(ctx context.Context) (string, error)
	Profiles(ctx context.Context) ([]profile, error)
	// Unsaved reports whether a profile lives in memory only.
	Unsaved(ctx context.Context, p dbus.ObjectPath) (bool, error)
	// Device returns errUnknownDevice when NM does not know the interface (yet).
	Device(ctx context.Context, iface string) (device, error)
	// Applied returns errNotActive when the device runs no connection.
	Applied(ctx context.Context, dev dbus.ObjectPath) (Settings, uint64, error)
	Gateway6(ctx context.Context, ip6config dbus.ObjectPath) (netip.Addr, error)
	// AddProfile adds a profile; with a device it also activates it there (AddAndActivate).
	AddProfile(ctx context.Context, s Settings, persist bool, activateOn dbus.ObjectPath) (dbus.ObjectPath, error)
	UpdateProfile(ctx context.Context, p dbus.ObjectPath, s Settings, persist bool) error
	DeleteProfile(ctx context.Context, p dbus.ObjectPath) error
	Activate(ctx context.Context, p, dev dbus.ObjectPath) error
	// Reapply makes the device apply s (nil: its profile as it is now) without reactivating. It
	// returns errVersionMismatch when version is not the applied connection's.
	Reapply(ctx context.Context, dev dbus.ObjectPath, s Settings, version uint64, flags uint32) error
}

// dbusNM is nmAPI over a D-Bus connection.
type dbusNM struct {
	conn *dbus.Conn
}

func (c dbusNM) call(ctx context.Context, path dbus.ObjectPath, method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	call := c.conn.Object(nmDest, path).CallWithContext(ctx, method, 0, args...)
	if call.Err != nil {
		call.Err = mapError(method, call.Err)
	}
	return call
}

func mapError(method string, err error) error {
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case gonm.NetworkManagerInterface + ".UnknownDevice":
			err = errUnknownDevice
		case gonm.DeviceInterface + ".VersionIdMismatch":
			err = errVersionMismatch
		case gonm.DeviceInterface + ".NotActive":
			err = errNotActive
		}
	}
	return fmt.Errorf("%s: %w", method, err)
}

func (c dbusNM) property(ctx context.Context, path dbus.ObjectPath, iface, name string, out any) error {
	var v dbus.Variant
	if err := c.call(ctx, path, propertiesIfce+".Get", iface, name).Store(&v); err != nil {
		return err
	}
	return dbus.Store([]any{v.Value()}, out)
}

func (c dbusNM) Version(ctx context.Context) (string, error) {
	var v string
	err := c.property(ctx, nmPath, gonm.NetworkManagerInterface, "Version", &v)
	return v, err
}

func (c dbusNM) Profiles(ctx context.Context) ([]profile, error) {
	var paths []dbus.ObjectPath
	if err := c.call(ctx, settingsPath, gonm.SettingsListConnections).Store(&paths); err != nil {
		return nil, err
	}
	out := make([]profile, 0, len(paths))
	for _, p := range paths {
		var s Settings
		if err := c.call(ctx, p, gonm.ConnectionGetSettings).Store(&s); err != nil {
			var de dbus.Error
			if errors.As(err, &de) && (de.Name == "org.freedesktop.DBus.Error.UnknownObject" ||
				de.Name == "org.freedesktop.DBus.Error.UnknownMethod") {
				continue // deleted between the list and the read
			}
			return nil, err
		}
		out = append(out, profile{Path: p, Settings: s})
	}
	return out, nil
}

func (c dbusNM) Unsaved(ctx context.Context, p dbus.ObjectPath) (bool, error) {
	var flags uint32
	err := c.property(ctx, p, gonm.ConnectionInterface, "Flags", &flags)
	return flags&connFlagUnsaved != 0, err
}

func (c dbusNM) Device(ctx context.Context, iface string) (device, error) {
	var d device
	if err := c.call(ctx, nmPath, gonm.NetworkManagerGetDeviceByIpIface, iface).Store(&d.Path); err != nil {
		return d, err
	}
	var props map[string]dbus.Variant
	if err := c.call(ctx, d.Path, propertiesIfce+".GetAll", gonm.DeviceInterface).Store(&props); err != nil {
		return d, err
	}
	state, _ := props["State"].Value().(uint32)
	d.State = gonm.NmDeviceState(state)
	d.Autoconnect, _ = props["Autoconnect"].Value().(bool)
	d.Available, _ = props["AvailableConnections"].Value().([]dbus.ObjectPath)
	d.Ip6Config, _ = props["Ip6Config"].Value().(dbus.ObjectPath)
	if ac, _ := props["ActiveConnection"].Value().(dbus.ObjectPath); ac != "" && ac != noObject {
		var p dbus.ObjectPath
		if err := c.property(ctx, ac, gonm.ActiveConnectionInterface, "Connection", &p); err != nil {
			return d, err
		}
		if p != noObject {
			d.Active = p
		}
	}
	return d, nil
}

func (c dbusNM) Applied(ctx context.Context, dev dbus.ObjectPath) (Settings, uint64, error) {
	var s Settings
	var version uint64
	err := c.call(ctx, dev, gonm.DeviceGetAppliedConnection, uint32(0)).Store(&s, &version)
	return s, version, err
}

func (c dbusNM) Gateway6(ctx context.Context, ip6config dbus.ObjectPath) (netip.Addr, error) {
	if ip6config == "" || ip6config == noObject {
		return netip.Addr{}, nil
	}
	var gw string
	if err := c.property(ctx, ip6config, gonm.IP6ConfigInterface, "Gateway", &gw); err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(gw)
	if err != nil {
		return netip.Addr{}, nil // "" while NM has no IPv6 router
	}
	return a, nil
}

func (c dbusNM) AddProfile(ctx context.Context, s Settings, persist bool, activateOn dbus.ObjectPath) (dbus.ObjectPath, error) {
	var path, active dbus.ObjectPath
	var result map[string]dbus.Variant
	if activateOn != "" {
		where := "memory"
		if persist {
			where = "disk"
		}
		opts := map[string]dbus.Variant{"persist": dbus.MakeVariant(where)}
		err := c.call(ctx, nmPath, gonm.NetworkManagerAddAndActivateConnection2, s, activateOn, noObject, opts).
			Store(&path, &active, &result)
		return path, err
	}
	flags := add2InMemory
	if persist {
		flags = add2ToDisk
	}
	err := c.call(ctx, settingsPath, gonm.SettingsInterface+".AddConnection2", s, flags, map[string]dbus.Variant{}).
		Store(&path, &result)
	return path, err
}

func (c dbusNM) UpdateProfile(ctx context.Context, p dbus.ObjectPath, s Settings, persist bool) error {
	flags := update2InMemoryOnly
	if persist {
		flags = update2ToDisk
	}
	var result map[string]dbus.Variant
	return c.call(ctx, p, gonm.ConnectionUpdate2, s, flags, map[string]dbus.Variant{}).Store(&result)
}

func (c dbusNM) DeleteProfile(ctx context.Context, p dbus.ObjectPath) error {
	return c.call(ctx, p, gonm.ConnectionDelete).Err
}

func (c dbusNM) Activate(ctx context.Context, p, dev dbus.ObjectPath) error {
	var active dbus.ObjectPath
	return c.call(ctx, nmPath, gonm.NetworkManagerActivateConnection, p, dev, noObject).Store(&active)
}

func (c dbusNM) Reapply(ctx context.Context, dev dbus.ObjectPath, s Settings, version uint64, flags uint32) error {
	if s == nil {
		s = Settings{} // empty: the profile as it is now
	}
	return c.call(ctx, dev, gonm.DeviceReapply, s, version, flags).Err
}
