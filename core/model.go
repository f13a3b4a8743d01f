// Package core holds the model of an instance's network interfaces, the pure planner that turns
// IMDS data and local links into a desired state, and the interfaces backends implement.
package core

import (
	"fmt"
	"net/netip"
)

// RawInstance is the instance's network metadata exactly as IMDS serves it, before validation.
// A key missing from an ENI's map means IMDS answered 404 for it. Keeping the raw strings lets the
// IMDS client stay a thin transport and keeps all parsing and validation pure and testable.
type RawInstance struct {
	// PrimaryMAC is meta-data/mac: the MAC of the ENI the instance was launched with.
	PrimaryMAC string
	// ENIs maps a MAC (as listed under network/interfaces/macs/) to its keys.
	ENIs map[string]map[string]string
	// AssumeCardZero lists the MACs whose network-card key the reader has waited for long
	// enough: on a multi-card instance they are taken as card 0 where that slot is free, as
	// amazon-ec2-net-utils's _get_network_card answers 0 once its retries run out.
	AssumeCardZero []string
}

// IMDS keys read for every ENI, relative to network/interfaces/macs/<mac>/.
const (
	KeyDeviceNumber   = "device-number"
	KeyNetworkCard    = "network-card"
	KeyInterfaceID    = "interface-id"
	KeyLocalIPv4s     = "local-ipv4s"
	KeyIPv6s          = "ipv6s"
	KeyIPv4Prefix     = "ipv4-prefix"
	KeyIPv6Prefix     = "ipv6-prefix"
	KeySubnetIPv4CIDR = "subnet-ipv4-cidr-block"
	KeySubnetIPv6CIDR = "subnet-ipv6-cidr-blocks"
	KeyVPCIPv4CIDRs   = "vpc-ipv4-cidr-blocks"
	KeyVPCIPv6CIDRs   = "vpc-ipv6-cidr-blocks"
)

// ENIKeys lists every per-ENI key the agent reads, in the order they are fetched.
var ENIKeys = []string{
	KeyDeviceNumber, KeyNetworkCard, KeyInterfaceID, KeyLocalIPv4s, KeyIPv6s, KeyIPv4Prefix,
	KeyIPv6Prefix, KeySubnetIPv4CIDR, KeySubnetIPv6CIDR, KeyVPCIPv4CIDRs, KeyVPCIPv6CIDRs,
}

// Instance is a validated snapshot of the instance's ENIs.
type Instance struct {
	PrimaryMAC string
	// ENIs that are fully propagated and valid, sorted by (NetworkCard, DeviceNumber, MAC).
	ENIs []ENI
	// Problems lists ENIs that IMDS knows about but that cannot be planned yet (not propagated)
	// or at all (malformed data). They are never planned with partial data.
	Problems []ENIProblem
}

// ENI is one Elastic Network Interface as IMDS describes it, every value parsed.
type ENI struct {
	MAC          string
	InterfaceID  string
	DeviceNumber int
	NetworkCard  int
	// LocalIPv4s keeps IMDS order: the first entry is the ENI's primary private address.
	LocalIPv4s []netip.Addr
	IPv6s      []netip.Addr
	// Delegated prefixes, canonical (masked, compressed) form.
	IPv4Prefixes []netip.Prefix
	IPv6Prefixes []netip.Prefix
	SubnetIPv4   netip.Prefix // zero when the subnet has no IPv4 (IPv6-only subnet)
	SubnetIPv6   []netip.Prefix
	VPCIPv4      []netip.Prefix
	VPCIPv6      []netip.Prefix
}

// ProblemKind says why an ENI in IMDS is not planned.
type ProblemKind string

const (
	// ProblemNotPropagated: IMDS lists the ENI but a required key is still missing, or a
	// non-primary ENI still reads device-number 0 on card 0. It will be planned once IMDS catches up.
	ProblemNotPropagated ProblemKind = "not-propagated"
	// ProblemInvalid: a value could not be parsed. Needs a human (or an IMDS fix); other ENIs go on.
	ProblemInvalid ProblemKind = "invalid"
)

// ENIProblem records why one ENI was left out of the snapshot.
type ENIProblem struct {
	MAC    string      `json:"mac"`
	Kind   ProblemKind `json:"kind"`
	Reason string      `json:"reason"`
}

// Link is a network link as the kernel reports it.
type Link struct {
	Name   string
	Index  int
	MAC    string // lower-case, colon separated
	Driver string // from ethtool/sysfs; empty for purely virtual links
	Kind   string // netlink kind: "veth", "vlan", "bridge", "" for physical devices
}

// Family is an address family in the plan.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// MarshalText writes "ipv4" or "ipv6", so the JSON plan reads without a lookup table.
func (f Family) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText accepts what MarshalText writes.
func (f *Family) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ipv4":
		*f = IPv4
	case "ipv6":
		*f = IPv6
	default:
		return fmt.Errorf("family %q: want ipv4 or ipv6", b)
	}
	return nil
}

// FamilyOf returns the family of an address.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	return IPv6
}

// Plan is the desired state of every ENI present on the host.
type Plan struct {
	Interfaces []InterfacePlan `json:"interfaces"`
	// Pending are ENIs in IMDS that cannot be configured now, with the reason.
	Pending []Pending `json:"pending"`
	// Ignored are local links that look like ENIs (driver or MAC) but are not planned, with the reason.
	Ignored []Ignored `json:"ignored"`
	// Warnings are things a human should know that did not stop planning.
	Warnings []string `json:"warnings,omitempty"`
}

// InterfacePlan is everything a backend needs to configure one ENI.
type InterfacePlan struct {
	Name         string `json:"name"`
	Index        int    `json:"ifindex"`
	MAC          string `json:"mac"`
	InterfaceID  string `json:"interface_id"`
	Primary      bool   `json:"primary"`
	DeviceNumber int    `json:"device_number"`
	NetworkCard  int    `json:"network_card"`
	Table        int    `json:"table"`
	Priority     int    `json:"priority"`
	// Metric for the routes the manager installs in the main table (DHCP default and subnet).
	Metric int `json:"metric"`
	// MainDefaultRoute says whether the ENI's DHCP default route goes into the main table.
	MainDefaultRoute bool `json:"main_default_route"`
	// IPv4 and IPv6 say whether the ENI's subnet has that family.
	IPv4 bool `json:"ipv4"`
	IPv6 bool `json:"ipv6"`
	// PrimaryIPv4 is the ENI's primary private address (first of local-ipv4s), obtained by DHCP.
	PrimaryIPv4 netip.Addr `json:"primary_ipv4,omitzero"`
	// SubnetIPv4 is the prefix DHCP hands out with the primary address.
	SubnetIPv4 netip.Prefix `json:"subnet_ipv4,omitzero"`
	// Rules are the source rules steering traffic from the ENI's addresses into its table.
	Rules []Rule `json:"rules"`
	// Addresses are statically assigned secondary addresses (/32 or /128, no prefix route).
	Addresses []netip.Prefix `json:"addresses"`
	// Routes are the routes in the ENI's own table.
	Routes   []Route  `json:"routes"`
	Altnames []string `json:"altnames"`
	// MTU to set on the link; 0 leaves it to DHCP.
	MTU int `json:"mtu,omitempty"`
}

// Rule is a source rule: "ip rule add from <From> lookup <Table> priority <Priority>".
type Rule struct {
	Family   Family       `json:"family"`
	From     netip.Prefix `json:"from"`
	Table    int          `json:"table"`
	Priority int          `json:"priority"`
}

// Route is a route in an ENI table.
type Route struct {
	Table       int          `json:"table"`
	Destination netip.Prefix `json:"destination"`
	// Gateway is the next hop; zero for on-link (subnet) routes and for RA-learned gateways.
	Gateway netip.Addr `json:"gateway,omitzero"`
	// GatewayFromRA marks the IPv6 default route whose gateway is the router learned from router
	// advertisements (the VPC router's link-local address, which IMDS does not publish).
	GatewayFromRA bool `json:"gateway_from_ra,omitempty"`
	// Metric, Source (the preferred source), Protocol and OnLink are the route as the kernel has
	// it: the planner leaves them zero (the manager's defaults), netlink fills them in when it
	// reads a route, so that a route someone deleted can be put back exactly as its manager
	// installed it. The kernel tells routes apart by all of them: put back with another one, the
	// manager adding its route again makes a second route beside ours (seen with networkd's
	// GatewayOnLink).
	Metric   int        `json:"-"`
	Source   netip.Addr `json:"-"`
	Protocol int        `json:"-"`
	OnLink   bool       `json:"-"`
}

// Pending is an ENI known to IMDS that is not configured now.
type Pending struct {
	MAC    string `json:"mac"`
	Name   string `json:"name,omitempty"`
	Reason string `json:"reason"`
}

// Ignored is a local link that is not planned.
type Ignored struct {
	Name   string `json:"name"`
	MAC    string `json:"mac"`
	Reason string `json:"reason"`
}
