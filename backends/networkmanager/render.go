// Package networkmanager configures ENIs through NetworkManager's D-Bus API: one profile per ENI
// that the agent owns (in memory by default, so every boot regenerates it from IMDS), and, for an
// ENI that runs a profile of the user's, the plan's routing added to that profile's applied
// connection with Device.Reapply, the way nm-cloud-setup does it.
//
// render.go turns a plan into NM settings (pure); merge.go adds the plan to a user's applied
// connection (pure); compare.go tells whether NM already has what we want; apply.go decides and
// acts; dbus.go is the thin D-Bus client; detect.go tells whether NM runs and owns the ENIs.
package networkmanager

import (
	"crypto/sha1"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Settings is a connection profile as NM's D-Bus API carries it (a{sa{sv}}): setting name → key →
// typed value. The types matter: NM rejects a "table" sent as int32 where it wants uint32.
type Settings = map[string]map[string]dbus.Variant

// User-data keys (the profile's "user" setting). NM keeps them with the profile and shows them in
// `nmcli connection show`, so a user can tell what made the profile and how to opt out.
const (
	// TagManaged marks a profile the agent created. It is half of the ownership test: see Owned.
	TagManaged = "org.ec2-net-utils.managed"
	// TagInterfaceID records the ENI id, for people reading the profile.
	TagInterfaceID = "org.ec2-net-utils.interface-id"
	// TagBase marks the packaged profile that gives every ENI DHCP until the agent configures it
	// (packaging/NetworkManager/system-connections/ec2-net-utils-default.nmconnection).
	TagBase = "org.ec2-net-utils.base"
	// TagSkip on a user's profile ("yes") makes the agent leave the ENI it runs on alone.
	TagSkip = "org.ec2-net-utils.skip"
	// tagCloudSetupSkip keeps nm-cloud-setup (enabled on RHEL EC2 images) from rewriting our
	// profiles' routing with its own tables 30200/30400 on every DHCP event.
	tagCloudSetupSkip = "org.freedesktop.nm-cloud-setup.skip"
)

// ProfileID is the name of the agent's profile for an interface, as `nmcli connection` lists it.
func ProfileID(iface string) string { return "ec2-net-utils-" + iface }

// uuidNamespace is the RFC 9562 name-based namespace of the agent's profile UUIDs.
var uuidNamespace = [16]byte{0x6b, 0x1e, 0x5d, 0x2a, 0x0e, 0xc2, 0x4e, 0x75, 0x8a, 0x91, 0x3c, 0x0d, 0xe2, 0x11, 0x7f, 0x05}

// ProfileUUID is the UUID of the agent's profile for the ENI with this MAC (version 5, from the
// MAC). It is stable across restarts and reboots, so the agent finds its profile with one lookup
// and NM refuses a duplicate for the same ENI.
func ProfileUUID(mac string) string {
	h := sha1.New()
	h.Write(uuidNamespace[:])
	h.Write([]byte("ec2-net-utils:" + mac))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Owned reports whether a profile is the agent's own: it carries TagManaged and the UUID derived
// from its own MAC. Both, so that a copy (`nmcli connection clone`) belongs to the user who made it.
func Owned(s Settings) bool {
	if userData(s)[TagManaged] != "yes" {
		return false
	}
	mac, ok := profileMAC(s)
	return ok && stringValue(s, "connection", "uuid") == ProfileUUID(mac)
}

// IsBase reports whether a profile is the packaged base profile.
func IsBase(s Settings) bool { return userData(s)[TagBase] == "yes" }

// Skipped reports whether a user's profile asks the agent to leave it alone.
func Skipped(s Settings) bool { return userData(s)[TagSkip] == "yes" }

// ipv6 methods. "ignore" leaves IPv6 to the kernel on subnets without IPv6: NM then does not
// restart IPv6 (and drop the kernel's link-local address) on every Reapply, as it does with "auto".
const (
	method6Auto   = "auto"
	method6Ignore = "ignore"
)

// addrGenEUI64 makes NM's link-local and SLAAC addresses the kernel's EUI-64 ones, as networkd's.
const addrGenEUI64 = int32(0)

// Address families as NM's routing rules carry them (AF_INET, AF_INET6).
const (
	afInet  = int32(2)
	afInet6 = int32(10)
)

// Render returns the agent's profile for one ENI. It is pure and deterministic. Every key the
// agent manages is present, even at its default value, so that comparing with NM's copy (which
// leaves defaults out) can tell an unchanged profile from one someone edited.
//
// The profile matches the ENI by MAC and by name: by MAC so it can only ever configure that ENI,
// by name so a profile left behind by a detached ENI cannot capture it when it comes back under
// another name (amazon-ec2-net-utils #166). It puts the DHCP routes into main with the ENI's
// metric (and without the default route when main_default_route is off), and adds the plan's
// secondary addresses, its ENI-table routes and source rules. ipv4.route-table and
// ipv6.route-table stay unset on purpose: with them NM "takes ownership" of the table and deletes
// every route in it that it did not add, and the rules other agents point at it (VPC CNI pod
// rules).
//
// For an ENI with IPv6 the profile holds only what is stable: its source rules and secondary
// addresses are put into the kernel by the agent and listed in the profile's user data (see
// KernelCarried), so that IMDS address churn never needs a Reapply.
//
// The profile depends on the plan alone. The ENI table's IPv6 default route, whose router only NM
// learns (from RAs), is not in it: a Reapply that changes ipv6.routes makes NM 1.42 restart
// DHCPv6 and drop the DHCPv6 address, and the router NM reports comes and goes with every such
// restart, so naming it here made a Reapply loop (issue #12). Apply adds that route with netlink.
func Render(p core.InterfacePlan) Settings {
	mac, _ := parseMAC(p.MAC)
	data := map[string]string{TagManaged: "yes", tagCloudSetupSkip: "yes"}
	if p.InterfaceID != "" {
		data[TagInterfaceID] = p.InterfaceID
	}
	if KernelCarried(p) {
		data[TagKernel] = kernelCarries
	}
	neverDefault := !p.MainDefaultRoute
	s := Settings{
		"connection": {
			"id":             dbus.MakeVariant(ProfileID(p.Name)),
			"uuid":           dbus.MakeVariant(ProfileUUID(p.MAC)),
			"type":           dbus.MakeVariant("802-3-ethernet"),
			"interface-name": dbus.MakeVariant(p.Name),
		},
		"802-3-ethernet": {
			"mac-address": dbus.MakeVariant(mac),
			// 0 keeps the MTU DHCP hands out (option 26, the VPC's 9001), which NM applies by default.
			"mtu": dbus.MakeVariant(uint32(max(p.MTU, 0))),
		},
		"ipv4": {
			"method":        dbus.MakeVariant("auto"),
			"route-metric":  dbus.MakeVariant(int64(p.Metric)),
			"never-default": dbus.MakeVariant(neverDefault),
			"address-data":  dbus.MakeVariant(addressData(p, core.IPv4)),
			"route-data":    dbus.MakeVariant(routeData(p, core.IPv4)),
			"routing-rules": dbus.MakeVariant(ruleData(p, core.IPv4)),
		},
		"ipv6": ipv6Setting(p),
		"user": {"data": dbus.MakeVariant(data)},
	}
	if KernelCarried(p) {
		none := dbus.MakeVariant([]map[string]dbus.Variant{})
		for _, family := range []string{"ipv4", "ipv6"} {
			s[family]["address-data"], s[family]["routing-rules"] = none, none
		}
		s = withRecord(s, p.Addresses)
	}
	return s
}

// ipv6Setting leaves IPv6 alone on subnets without it and otherwise takes RA and DHCPv6, with
// the RA default route in main only when the plan wants the ENI's default route there.
func ipv6Setting(p core.InterfacePlan) map[string]dbus.Variant {
	if !p.IPv6 {
		return map[string]dbus.Variant{
			"method":        dbus.MakeVariant(method6Ignore),
			"addr-gen-mode": dbus.MakeVariant(addrGenEUI64),
		}
	}
	return map[string]dbus.Variant{
		"method":        dbus.MakeVariant(method6Auto),
		"addr-gen-mode": dbus.MakeVariant(addrGenEUI64),
		"route-metric":  dbus.MakeVariant(int64(p.Metric)),
		"never-default": dbus.MakeVariant(!p.MainDefaultRoute),
		"route-table":   dbus.MakeVariant(uint32(0)),
		"address-data":  dbus.MakeVariant(addressData(p, core.IPv6)),
		"route-data":    dbus.MakeVariant(routeData(p, core.IPv6)),
		"routing-rules": dbus.MakeVariant(ruleData(p, core.IPv6)),
	}
}

func hasRARoute(p core.InterfacePlan) bool {
	for _, r := range p.Routes {
		if r.GatewayFromRA {
			return true
		}
	}
	return false
}

// addressData lists the secondary addresses of one family (/32 or /128: NM adds no prefix route
// for them, so the subnet route stays the DHCP address's alone).
func addressData(p core.InterfacePlan, f core.Family) []map[string]dbus.Variant {
	out := []map[string]dbus.Variant{}
	for _, a := range p.Addresses {
		if core.FamilyOf(a.Addr()) != f {
			continue
		}
		out = append(out, map[string]dbus.Variant{
			"address": dbus.MakeVariant(a.Addr().String()),
			"prefix":  dbus.MakeVariant(uint32(a.Bits())),
		})
	}
	return out
}

// routeData lists the ENI-table routes of one family, each with its table, except those through
// the RA router: Apply adds them with netlink (see Render).
func routeData(p core.InterfacePlan, f core.Family) []map[string]dbus.Variant {
	out := []map[string]dbus.Variant{}
	for _, r := range p.Routes {
		if core.FamilyOf(r.Destination.Addr()) != f || r.GatewayFromRA {
			continue
		}
		gw := r.Gateway
		m := map[string]dbus.Variant{
			"dest":   dbus.MakeVariant(r.Destination.Masked().Addr().String()),
			"prefix": dbus.MakeVariant(uint32(r.Destination.Bits())),
			"table":  dbus.MakeVariant(uint32(r.Table)),
		}
		if gw.IsValid() {
			m["next-hop"] = dbus.MakeVariant(gw.String())
			if gw.Is4() {
				// The VPC router is on the subnet by construction. onlink lets the kernel take the
				// route before the DHCP address's subnet route exists (amazon-ec2-net-utils #56).
				m["onlink"] = dbus.MakeVariant(true)
			}
		}
		out = append(out, m)
	}
	return out
}

// ruleData lists the source rules of one family in plan order. NM's rules carry every number
// with its own type: family i, priority and table u, from-len y.
func ruleData(p core.InterfacePlan, f core.Family) []map[string]dbus.Variant {
	out := []map[string]dbus.Variant{}
	for _, r := range p.Rules {
		if r.Family != f {
			continue
		}
		family := afInet
		if f == core.IPv6 {
			family = afInet6
		}
		out = append(out, map[string]dbus.Variant{
			"family":   dbus.MakeVariant(family),
			"priority": dbus.MakeVariant(uint32(r.Priority)),
			"from":     dbus.MakeVariant(r.From.Masked().Addr().String()),
			"from-len": dbus.MakeVariant(uint8(r.From.Bits())),
			"table":    dbus.MakeVariant(uint32(r.Table)),
		})
	}
	return out
}

// parseMAC turns "02:aa:bb:cc:dd:ee" into the six bytes NM's mac-address (ay) holds.
func parseMAC(s string) ([]byte, bool) {
	var b [6]byte
	n, err := fmt.Sscanf(s, "%02x:%02x:%02x:%02x:%02x:%02x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5])
	if err != nil || n != 6 || len(s) != 17 {
		return nil, false
	}
	return b[:], true
}

// profileMAC returns the MAC a profile matches, in the lower-case colon form of core.Link.
func profileMAC(s Settings) (string, bool) {
	v, ok := s["802-3-ethernet"]["mac-address"]
	if !ok {
		return "", false
	}
	b, ok := v.Value().([]byte)
	if !ok || len(b) != 6 {
		return "", false
	}
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]), true
}

func userData(s Settings) map[string]string {
	v, ok := s["user"]["data"]
	if !ok {
		return nil
	}
	m, _ := v.Value().(map[string]string)
	return m
}

func stringValue(s Settings, setting, key string) string {
	v, ok := s[setting][key]
	if !ok {
		return ""
	}
	str, _ := v.Value().(string)
	return str
}
