package networkmanager

import (
	"maps"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Merge returns the connection to reapply on an ENI that runs a profile the agent does not own
// (a user's, cloud-init's, or the packaged base while a user's profile waits for the ENI): the
// applied connection with, for each IP family, the profile's own addresses, routes and rules
// followed by the plan's secondary addresses, ENI-table routes and source rules. The ENI table's
// IPv6 default route is not among them, as in Render: Apply adds it with netlink.
//
// Starting from the profile rather than from what is applied drops whatever an earlier plan added
// and the current one no longer has, without having to remember it (nm-cloud-setup does the
// same). Everything else stays as the user configured it: methods, metrics, DNS, and whether the
// ENI's default route goes into main. The profile on disk is never changed: the additions live as
// long as the activation, and the agent puts them back after the next one.
//
// A family whose method cannot carry addresses (disabled, ignore, link-local, shared) is left as
// it is; skipped names those families when the plan had something for them.
func Merge(applied, profile Settings, p core.InterfacePlan) (merged Settings, skipped []string) {
	merged = make(Settings, len(applied))
	for name, setting := range applied {
		merged[name] = setting
	}
	for _, f := range []core.Family{core.IPv4, core.IPv6} {
		name := f.String()
		if _, ok := applied[name]; !ok {
			continue
		}
		setting := maps.Clone(applied[name])
		// The deprecated arrays (ipv6.addresses a(ayuay), ipv6.routes a(ayuayu), and their IPv4
		// twins) duplicate the *-data keys, which NM reads instead when the arrays are absent.
		// They go in every case: their structs do not survive a godbus round trip with their
		// types, and NM rejects the whole Reapply for it, even for a family left alone.
		delete(setting, "addresses")
		delete(setting, "routes")
		merged[name] = setting

		add := map[string][]map[string]dbus.Variant{
			"address-data":  addressData(p, f),
			"route-data":    routeData(p, f),
			"routing-rules": ruleData(p, f),
		}
		method := stringValue(applied, name, "method")
		if method != "auto" && method != "manual" && method != "dhcp" {
			if len(add["address-data"])+len(add["route-data"])+len(add["routing-rules"]) > 0 {
				skipped = append(skipped, name+" (method "+method+")")
			}
			continue
		}
		for key, ours := range add {
			setting[key] = dbus.MakeVariant(union(listValue(profile, name, key), ours))
		}
	}
	return merged, skipped
}

// union appends the entries of b that a does not already hold (an address the user configured
// statically is not added twice).
func union(a, b []map[string]dbus.Variant) []map[string]dbus.Variant {
	out := append([]map[string]dbus.Variant{}, a...)
	seen := make(map[string]bool, len(a)+len(b))
	for _, m := range a {
		seen[canon(dbus.MakeVariant(m))] = true
	}
	for _, m := range b {
		if k := canon(dbus.MakeVariant(m)); !seen[k] {
			seen[k] = true
			out = append(out, m)
		}
	}
	return out
}

func listValue(s Settings, setting, key string) []map[string]dbus.Variant {
	v, ok := s[setting][key]
	if !ok {
		return nil
	}
	l, _ := v.Value().([]map[string]dbus.Variant)
	return l
}

// Adopt returns the connection to reapply on an ENI that runs the packaged base profile (see
// runOnBase): the base's applied connection with the IP settings of the agent's profile want in
// place of its own. The rest (the connection setting with the base's id and UUID, 802-3-ethernet,
// the base's tag) stays: NM refuses a Reapply that changes them.
func Adopt(applied, want Settings) Settings {
	adopted := maps.Clone(applied)
	maps.Copy(adopted, ipSettings(want))
	return adopted
}

// ipSettings is the part of a profile a Reapply onto another profile's activation carries.
func ipSettings(s Settings) Settings {
	return Settings{"ipv4": s["ipv4"], "ipv6": s["ipv6"]}
}
