package backends

import (
	"context"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/dbustest"
)

// fakeNetworkManager answers what detection asks NetworkManager over D-Bus: the device of an
// interface and the device's state.
type fakeNetworkManager struct {
	states map[string]uint32 // interface → NMDeviceState
}

func (f fakeNetworkManager) GetDeviceByIpIface(iface string) (dbus.ObjectPath, *dbus.Error) {
	if _, ok := f.states[iface]; !ok {
		return "", dbus.NewError("org.freedesktop.NetworkManager.UnknownDevice", []any{"No device found for the requested iface."})
	}
	return dbus.ObjectPath("/org/freedesktop/NetworkManager/Devices/" + iface), nil
}

type fakeDeviceProps struct{ state uint32 }

func (d fakeDeviceProps) GetAll(string) (map[string]dbus.Variant, *dbus.Error) {
	return map[string]dbus.Variant{
		"State":            dbus.MakeVariant(d.state),
		"ActiveConnection": dbus.MakeVariant(dbus.ObjectPath("/")),
		"Autoconnect":      dbus.MakeVariant(true),
	}, nil
}

// runNetworkManager owns NetworkManager's name on the bus and serves the devices.
func runNetworkManager(t *testing.T, addr string, states map[string]uint32) {
	t.Helper()
	conn := dbustest.Connect(t, addr)
	f := fakeNetworkManager{states: states}
	if err := conn.Export(f, "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager"); err != nil {
		t.Fatal(err)
	}
	for iface, state := range states {
		path := dbus.ObjectPath("/org/freedesktop/NetworkManager/Devices/" + iface)
		if err := conn.Export(fakeDeviceProps{state}, path, "org.freedesktop.DBus.Properties"); err != nil {
			t.Fatal(err)
		}
	}
	dbustest.Own(t, conn, "org.freedesktop.NetworkManager")
}

const (
	nmStateUnmanaged = 10
	nmStateActivated = 100
)

func selectAuto(t *testing.T, nmStates map[string]uint32, networkd bool) Selection {
	t.Helper()
	addr := dbustest.Start(t)
	if nmStates != nil {
		runNetworkManager(t, addr, nmStates)
	}
	if networkd {
		dbustest.Own(t, dbustest.Connect(t, addr), "org.freedesktop.network1")
	}
	cfg := conf.Defaults()
	cfg.Ifcfg.Dir = t.TempDir() + "/no-ifcfg-here" // the legacy fallback must not answer for NM or networkd
	links := []core.Link{
		{Name: "ens5", Index: 2, MAC: "02:00:00:00:05:05", Driver: "ena"},
		{Name: "docker0", Index: 3, MAC: "02:42:ac:11:00:01", Driver: "bridge"}, // not an ENI: never asked about
	}
	sel := Select(context.Background(), Options{Config: cfg, Bus: dbustest.Connect(t, addr), Links: links})
	t.Cleanup(sel.Close)
	return sel
}

func TestAutoPicksNetworkManagerWhenItManagesTheENIs(t *testing.T) {
	sel := selectAuto(t, map[string]uint32{"ens5": nmStateActivated}, false)
	if sel.Err != nil || sel.Name() != "networkmanager" {
		t.Fatalf("selected %q (%v), want networkmanager", sel.Name(), sel.Err)
	}
	for _, want := range []string{"org.freedesktop.NetworkManager", "ens5"} {
		if !strings.Contains(sel.Reason, want) {
			t.Errorf("reason %q does not mention %s", sel.Reason, want)
		}
	}
}

// NetworkManager is tried before networkd: where both run, NM holds the links.
func TestAutoPrefersNetworkManagerOverNetworkd(t *testing.T) {
	sel := selectAuto(t, map[string]uint32{"ens5": nmStateActivated}, true)
	if sel.Err != nil || sel.Name() != "networkmanager" {
		t.Fatalf("selected %q (%v), want networkmanager", sel.Name(), sel.Err)
	}
}

// NM running next to networkd without managing the ENIs (netplan gives them to networkd and
// marks them unmanaged in NM) is not the ENIs' manager.
func TestAutoPassesOverNetworkManagerThatDoesNotManageTheENIs(t *testing.T) {
	sel := selectAuto(t, map[string]uint32{"ens5": nmStateUnmanaged}, true)
	if sel.Err != nil || sel.Name() != "networkd" {
		t.Fatalf("selected %q (%v), want networkd", sel.Name(), sel.Err)
	}
}

func TestAutoWithNeitherManagerNamesBoth(t *testing.T) {
	sel := selectAuto(t, nil, false)
	if sel.Backend != nil || sel.Err == nil {
		t.Fatalf("selected %q with neither manager running", sel.Name())
	}
	for _, want := range []string{"org.freedesktop.NetworkManager", "org.freedesktop.network1"} {
		if !strings.Contains(sel.Err.Error(), want) {
			t.Errorf("error %q does not mention %s", sel.Err, want)
		}
	}
}

func TestExplicitNetworkManagerNeedsNoDetection(t *testing.T) {
	addr := dbustest.Start(t)
	cfg := conf.Defaults()
	cfg.Backend = conf.BackendNetworkManager
	sel := Select(context.Background(), Options{Config: cfg, Bus: dbustest.Connect(t, addr)})
	t.Cleanup(sel.Close)
	if sel.Err != nil || sel.Name() != "networkmanager" || !strings.Contains(sel.Reason, "configuration") {
		t.Fatalf("selected %q (%v, %q), want networkmanager from the configuration", sel.Name(), sel.Err, sel.Reason)
	}
}
