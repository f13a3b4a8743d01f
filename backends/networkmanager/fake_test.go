package networkmanager

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	gonm "github.com/Wifx/gonetworkmanager/v3"
	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
)

// fakeNM models what the backend relies on in NetworkManager: profiles (stored the way NM hands
// them back, defaults left out), devices with the profile they run, the applied connection and
// its version id. Every call that changes something is recorded in calls.
type fakeNM struct {
	version  string
	profiles map[dbus.ObjectPath]*fakeProfile
	devices  map[string]*fakeDevice
	next     int
	calls    []string
	// mismatches makes that many Reapply calls fail as if another client reapplied just before.
	mismatches int
	// appearAfter hides a device from that many Device calls (a hot-attached link NM has not
	// picked up yet).
	appearAfter map[string]int
	// profilesErr makes listing the profiles fail.
	profilesErr error
	// reapplyErr makes every Reapply with settings fail (NM refusing them).
	reapplyErr error
}

type fakeProfile struct {
	settings Settings
	unsaved  bool
}

type fakeDevice struct {
	path        dbus.ObjectPath
	mac         string
	state       gonm.NmDeviceState
	autoconnect bool
	active      dbus.ObjectPath
	applied     Settings
	version     uint64
	gateway6    netip.Addr
}

func newFakeNM() *fakeNM {
	return &fakeNM{version: "1.42.4", profiles: map[dbus.ObjectPath]*fakeProfile{}, devices: map[string]*fakeDevice{},
		appearAfter: map[string]int{}}
}

// addDevice adds an activated-capable device with nothing running on it.
func (f *fakeNM) addDevice(iface, mac string) *fakeDevice {
	d := &fakeDevice{path: dbus.ObjectPath("/org/freedesktop/NetworkManager/Devices/" + iface), mac: mac,
		state: gonm.NmDeviceStateDisconnected, autoconnect: true}
	f.devices[iface] = d
	return d
}

// addProfile stores a profile without recording a call (state set up by the test).
func (f *fakeNM) addProfile(s Settings, unsaved bool) dbus.ObjectPath {
	f.next++
	p := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/NetworkManager/Settings/%d", f.next))
	f.profiles[p] = &fakeProfile{settings: nmCopy(s), unsaved: unsaved}
	return p
}

// run makes the device run a profile, as an activation does.
func (f *fakeNM) run(iface string, p dbus.ObjectPath) {
	d := f.devices[iface]
	d.active, d.state = p, gonm.NmDeviceStateActivated
	d.applied = nmCopy(f.profiles[p].settings)
	d.version++
}

func (f *fakeNM) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeNM) id(p dbus.ObjectPath) string {
	if prof := f.profiles[p]; prof != nil {
		return stringValue(prof.settings, "connection", "id")
	}
	return string(p)
}

func (f *fakeNM) deviceByPath(p dbus.ObjectPath) *fakeDevice {
	for _, d := range f.devices {
		if d.path == p {
			return d
		}
	}
	return nil
}

// available: NM's AvailableConnections — profiles whose interface-name and MAC (when set) fit.
func (f *fakeNM) available(iface string, d *fakeDevice) []dbus.ObjectPath {
	var out []dbus.ObjectPath
	for p, prof := range f.profiles {
		name := stringValue(prof.settings, "connection", "interface-name")
		mac, hasMAC := profileMAC(prof.settings)
		if (name == "" || name == iface) && (!hasMAC || mac == d.mac) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (f *fakeNM) Version(context.Context) (string, error) { return f.version, nil }

func (f *fakeNM) Profiles(context.Context) ([]profile, error) {
	if f.profilesErr != nil {
		return nil, f.profilesErr
	}
	var out []profile
	for p, prof := range f.profiles {
		out = append(out, profile{Path: p, Settings: prof.settings})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (f *fakeNM) Unsaved(_ context.Context, p dbus.ObjectPath) (bool, error) {
	prof := f.profiles[p]
	if prof == nil {
		return false, fmt.Errorf("no profile %s", p)
	}
	return prof.unsaved, nil
}

func (f *fakeNM) Device(_ context.Context, iface string) (device, error) {
	d := f.devices[iface]
	if f.appearAfter[iface] > 0 {
		f.appearAfter[iface]--
		return device{}, errUnknownDevice
	}
	if d == nil {
		return device{}, errUnknownDevice
	}
	return device{Path: d.path, State: d.state, Autoconnect: d.autoconnect, Active: d.active,
		Available: f.available(iface, d), Ip6Config: "/org/freedesktop/NetworkManager/IP6Config/" + dbus.ObjectPath(iface)}, nil
}

func (f *fakeNM) Applied(_ context.Context, dev dbus.ObjectPath) (Settings, uint64, error) {
	d := f.deviceByPath(dev)
	if d == nil || d.active == "" {
		return nil, 0, errNotActive
	}
	return d.applied, d.version, nil
}

func (f *fakeNM) Gateway6(_ context.Context, ip6config dbus.ObjectPath) (netip.Addr, error) {
	for iface, d := range f.devices {
		if ip6config == "/org/freedesktop/NetworkManager/IP6Config/"+dbus.ObjectPath(iface) {
			return d.gateway6, nil
		}
	}
	return netip.Addr{}, nil
}

func (f *fakeNM) AddProfile(_ context.Context, s Settings, persist bool, activateOn dbus.ObjectPath) (dbus.ObjectPath, error) {
	p := f.addProfile(s, !persist)
	if activateOn == "" {
		f.record("add %s persist=%v", f.id(p), persist)
		return p, nil
	}
	d := f.deviceByPath(activateOn)
	f.record("add-and-activate %s persist=%v", f.id(p), persist)
	for iface, dd := range f.devices {
		if dd == d {
			f.run(iface, p)
		}
	}
	return p, nil
}

func (f *fakeNM) UpdateProfile(_ context.Context, p dbus.ObjectPath, s Settings, persist bool) error {
	f.profiles[p] = &fakeProfile{settings: nmCopy(s), unsaved: !persist}
	f.record("update %s persist=%v", f.id(p), persist)
	return nil
}

func (f *fakeNM) DeleteProfile(_ context.Context, p dbus.ObjectPath) error {
	f.record("delete %s", f.id(p))
	delete(f.profiles, p)
	for _, d := range f.devices {
		if d.active == p {
			d.active, d.state = "", gonm.NmDeviceStateDisconnected
		}
	}
	return nil
}

func (f *fakeNM) Activate(_ context.Context, p, dev dbus.ObjectPath) error {
	f.record("activate %s", f.id(p))
	for iface, d := range f.devices {
		if d.path == dev {
			f.run(iface, p)
		}
	}
	return nil
}

func (f *fakeNM) Reapply(_ context.Context, dev dbus.ObjectPath, s Settings, version uint64, flags uint32) error {
	d := f.deviceByPath(dev)
	if d == nil || d.active == "" {
		return errNotActive
	}
	if f.mismatches > 0 {
		f.mismatches--
		d.version++ // someone else reapplied
		return errVersionMismatch
	}
	if version != d.version {
		return errVersionMismatch
	}
	what := "profile"
	if s != nil && f.reapplyErr != nil {
		return f.reapplyErr
	}
	if s != nil {
		// NM refuses to reapply another profile's identity or Ethernet settings onto an activation.
		for _, setting := range []string{"connection", "802-3-ethernet"} {
			if canon(dbus.MakeVariant(s[setting])) != canon(dbus.MakeVariant(d.applied[setting])) {
				return fmt.Errorf("Reapply: Can't reapply changes to '%s' setting", setting)
			}
		}
		what = "merged"
		d.applied = nmCopy(s)
	} else {
		d.applied = nmCopy(f.profiles[d.active].settings)
	}
	d.version++
	f.record("reapply %s %s version=%d flags=%d", f.id(d.active), what, version, flags)
	return nil
}

// fakeKernel models the netlink side the backend uses for the ENI table's IPv6 default route:
// the routes in the ENI tables and, per link, the router of the RA default route in main.
type fakeKernel struct {
	routes []core.Route
	ra     map[string]netip.Addr
	calls  []string
	// rules and addrs are what the backend put into the kernel itself (ENIs with IPv6).
	rules []core.Rule
	addrs map[string][]netip.Prefix
}

func (k *fakeKernel) Rules(lo, hi int) ([]core.Rule, error) {
	var out []core.Rule
	for _, r := range k.rules {
		if r.Priority >= lo && r.Priority <= hi {
			out = append(out, r)
		}
	}
	return out, nil
}

func (k *fakeKernel) EnsureRules(want []core.Rule) ([]core.Rule, error) {
	var added []core.Rule
	for _, r := range want {
		if !slices.Contains(k.rules, r) {
			k.rules = append(k.rules, r)
			added = append(added, r)
			k.calls = append(k.calls, "rule add "+r.String())
		}
	}
	return added, nil
}

func (k *fakeKernel) DeleteRules(rules []core.Rule) error {
	for _, r := range rules {
		k.rules = slices.DeleteFunc(k.rules, func(h core.Rule) bool { return h == r })
		k.calls = append(k.calls, "rule del "+r.String())
	}
	return nil
}

func (k *fakeKernel) SyncAddresses(l core.Link, want, owned []netip.Prefix) (added, removed []netip.Prefix, err error) {
	if k.addrs == nil {
		k.addrs = map[string][]netip.Prefix{}
	}
	have := k.addrs[l.Name]
	for _, a := range want {
		if !slices.Contains(have, a) {
			have = append(have, a)
			added = append(added, a)
			k.calls = append(k.calls, fmt.Sprintf("addr add %s dev %s", a, l.Name))
		}
	}
	for _, a := range owned {
		if !slices.Contains(want, a) && slices.Contains(have, a) {
			have = slices.DeleteFunc(have, func(h netip.Prefix) bool { return h == a })
			removed = append(removed, a)
			k.calls = append(k.calls, fmt.Sprintf("addr del %s dev %s", a, l.Name))
		}
	}
	k.addrs[l.Name] = have
	return added, removed, nil
}

func newFakeKernel() *fakeKernel { return &fakeKernel{ra: map[string]netip.Addr{}} }

func (k *fakeKernel) RoutesInTable(table int) ([]core.Route, error) {
	var out []core.Route
	for _, r := range k.routes {
		if r.Table == table {
			out = append(out, r)
		}
	}
	return out, nil
}

func (k *fakeKernel) EnsureRoutes(l core.Link, routes []core.Route) ([]core.Route, error) {
	var replaced []core.Route
	var errs []error
	for _, r := range routes {
		gw := r.Gateway
		if r.GatewayFromRA {
			if gw = k.ra[l.Name]; !gw.IsValid() {
				errs = append(errs, fmt.Errorf("fake: %s: %w", l.Name, netlinkx.ErrNoRARouter))
				continue
			}
		}
		resolved := core.Route{Table: r.Table, Destination: r.Destination.Masked(), Gateway: gw}
		if slices.Contains(k.routes, resolved) {
			continue
		}
		k.routes = slices.DeleteFunc(k.routes, func(h core.Route) bool {
			return h.Table == r.Table && h.Destination == resolved.Destination
		})
		k.routes = append(k.routes, resolved)
		k.calls = append(k.calls, fmt.Sprintf("route replace %s via %s dev %s table %d", resolved.Destination, gw, l.Name, r.Table))
		replaced = append(replaced, r)
	}
	return replaced, errors.Join(errs...)
}
