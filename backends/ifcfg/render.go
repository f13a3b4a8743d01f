// Package ifcfg configures ENIs on hosts that run initscripts and ISC dhclient (Amazon Linux 2,
// CentOS 7), where amazon-ec2-net-utils 1.x used to. It writes the files initscripts reads, so
// that `service network restart` brings back what the agent set up, and applies the same state
// to the kernel itself: source rules, ENI-table routes and secondary addresses through netlink,
// the DHCP lease through one dhclient per ENI running the project's own dhclient script.
//
// render.go turns a plan into file contents and dhclient arguments (pure); knobs.go reads the
// 1.x settings administrators keep in ifcfg-<iface> (pure); apply.go writes files and changes the
// kernel; dhclient.go starts, finds and stops dhclient; detect.go decides whether this backend
// fits the host.
package ifcfg

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Default locations: what initscripts and dhclient read on Amazon Linux 2 and CentOS 7.
const (
	DefaultDir             = "/etc/sysconfig/network-scripts"
	DefaultDHClientConfDir = "/etc/dhcp"
	// DefaultScript is where the packages install packaging/ifcfg/dhclient-script.
	DefaultScript = "/usr/libexec/ec2-net-utils/dhclient-script"
)

// Kind is what a generated file is for; it is also the prefix of its name.
type Kind string

// The files the backend writes for an interface. Their names are the ones initscripts reads:
// ifup reads ifcfg-<iface>, ifup-routes feeds every line of route-, route6-, rule- and rule6-<iface>
// to `ip [-6] route|rule add`, and ifup passes dhclient-<iface>.conf to dhclient with -cf.
const (
	KindIfcfg    Kind = "ifcfg"
	KindRoute    Kind = "route"
	KindRoute6   Kind = "route6"
	KindRule     Kind = "rule"
	KindRule6    Kind = "rule6"
	KindDHClient Kind = "dhclient"
)

// Kinds lists every kind in the order Render produces them.
var Kinds = []Kind{KindIfcfg, KindRoute, KindRoute6, KindRule, KindRule6, KindDHClient}

// Paths are the directories the files go to.
type Paths struct {
	Dir             string // ifcfg-, route-, route6-, rule-, rule6-<iface>
	DHClientConfDir string // dhclient-<iface>.conf
}

// FileName is where the file of a kind for iface lives.
func (p Paths) FileName(k Kind, iface string) string {
	if k == KindDHClient {
		return filepath.Join(p.DHClientConfDir, "dhclient-"+iface+".conf")
	}
	return filepath.Join(p.Dir, string(k)+"-"+iface)
}

// Settings are what the files say beyond the plan.
type Settings struct {
	// ProvisionPrefixIPs is the effective EC2PROVISIONPFXIPS: whether the addresses of delegated
	// IPv4 prefixes are assigned (the plan already holds them when they are).
	ProvisionPrefixIPs bool
	// BroadcastRenewals writes 1.x's `supersede dhcp-server-identifier 255.255.255.255;`: dhclient
	// then broadcasts its renewals on the ENI, instead of unicasting them through whichever ENI
	// the main table prefers for the server — the wrong one when two ENIs share a subnet.
	BroadcastRenewals bool
	// RARouter is the IPv6 router learned from router advertisements on the link (zero if none
	// yet). It is the gateway of the ENI table's IPv6 default route, which IMDS does not publish.
	RARouter netip.Addr
}

// File is one generated file.
type File struct {
	Kind    Kind
	Path    string
	Content []byte
}

// Render returns the files for one interface, in the order of Kinds. It is pure and
// deterministic. Files that would be empty are left out (Apply removes them if they exist). The
// primary ENI's ifcfg and dhclient configuration belong to the image and initscripts, which run
// its DHCP; only its route and rule files are written.
func Render(p core.InterfacePlan, paths Paths, s Settings) []File {
	var files []File
	add := func(k Kind, body []string) {
		if len(body) == 0 {
			return
		}
		files = append(files, File{Kind: k, Path: paths.FileName(k, p.Name), Content: withHeader(p, body)})
	}
	if !p.Primary {
		add(KindIfcfg, ifcfgLines(p, s))
	}
	add(KindRoute, routeLines(p, core.IPv4, s))
	add(KindRoute6, routeLines(p, core.IPv6, s))
	add(KindRule, ruleLines(p, core.IPv4))
	add(KindRule6, ruleLines(p, core.IPv6))
	if !p.Primary && p.IPv4 {
		add(KindDHClient, dhclientConfLines(p, s))
	}
	return files
}

// ifcfgLines are the keys amazon-ec2-net-utils 1.x writes for a secondary ENI (§5.2 of the
// reference), in its order, with the knobs at the end showing what the agent applies.
func ifcfgLines(p core.InterfacePlan, s Settings) []string {
	lines := []string{
		"DEVICE=" + p.Name,
		"BOOTPROTO=dhcp",
		"ONBOOT=yes",
		"TYPE=Ethernet",
		"USERCTL=yes",
		"PEERDNS=no",
		"IPV6INIT=" + yesNo(p.IPv6),
		"DHCPV6C=" + yesNo(p.IPv6),
	}
	if p.IPv6 {
		lines = append(lines, "DHCPV6C_OPTIONS=-nw")
	}
	lines = append(lines,
		"PERSISTENT_DHCLIENT=yes",
		"HWADDR="+p.MAC,
		// initscripts' own dhclient-script adds no default route for this ENI; route-<iface>
		// carries the one the plan wants, with the ENI's metric.
		"DEFROUTE=no",
	)
	if p.MTU > 0 {
		lines = append(lines, "MTU="+strconv.Itoa(p.MTU))
	}
	return append(lines,
		"EC2SYNC=yes",
		"MAINROUTETABLE="+yesNo(p.MainDefaultRoute),
		"EC2PROVISIONPFXIPS="+yesNo(s.ProvisionPrefixIPs),
	)
}

// routeLines are `ip route add` arguments that recreate the routes the agent installs: the ENI
// table's routes (on-link ones first: the gateway must be reachable when its route is added) and,
// for a secondary ENI whose plan wants it, the main-table default route the dhclient script adds.
func routeLines(p core.InterfacePlan, fam core.Family, s Settings) []string {
	var onlink, viaGateway []string
	for _, r := range p.Routes {
		if core.FamilyOf(r.Destination.Addr()) != fam {
			continue
		}
		gw := r.Gateway
		if r.GatewayFromRA {
			if !s.RARouter.IsValid() {
				continue // written once the router is known
			}
			gw = s.RARouter
		}
		if gw.IsValid() {
			viaGateway = append(viaGateway, fmt.Sprintf("%s via %s dev %s proto static table %d", dest(r.Destination), gw, p.Name, r.Table))
		} else {
			onlink = append(onlink, fmt.Sprintf("%s dev %s proto static scope link table %d", dest(r.Destination), p.Name, r.Table))
		}
	}
	lines := append(onlink, viaGateway...)
	if fam == core.IPv4 && !p.Primary && p.MainDefaultRoute && p.PrimaryIPv4.IsValid() {
		if gw := ipv4Router(p); gw.IsValid() {
			lines = append(lines, fmt.Sprintf("default via %s dev %s proto dhcp src %s metric %d", gw, p.Name, p.PrimaryIPv4, p.Metric))
		}
	}
	return lines
}

// ipv4Router is the gateway of the ENI table's IPv4 default route: the VPC router.
func ipv4Router(p core.InterfacePlan) netip.Addr {
	for _, r := range p.Routes {
		if r.Destination.Bits() == 0 && r.Gateway.Is4() {
			return r.Gateway
		}
	}
	return netip.Addr{}
}

// ruleLines are `ip rule add` arguments for the plan's rules of a family. No "protocol": the
// iproute2 of CentOS 7 does not know it.
func ruleLines(p core.InterfacePlan, fam core.Family) []string {
	var lines []string
	for _, r := range p.Rules {
		if r.Family == fam {
			lines = append(lines, fmt.Sprintf("from %s table %d priority %d", fromText(r.From), r.Table, r.Priority))
		}
	}
	return lines
}

// dhclientConfLines is 1.x's dhclient-<iface>.conf. A configuration file replaces dhclient's
// defaults, and those do not ask for the MTU, so it is requested unless the plan sets one.
func dhclientConfLines(p core.InterfacePlan, s Settings) []string {
	var lines []string
	if s.BroadcastRenewals {
		lines = append(lines, "supersede dhcp-server-identifier 255.255.255.255;")
	}
	lines = append(lines, "timeout 300;")
	if p.MTU == 0 {
		lines = append(lines, "also request interface-mtu;")
	}
	return lines
}

func dest(p netip.Prefix) string {
	if p.Bits() == 0 {
		return "default"
	}
	return p.Masked().String()
}

// fromText writes a host prefix as a bare address, as `ip rule` shows it.
func fromText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Ownership. Every generated file starts with a header: a marker line naming the interface,
// then a checksum of the whole file without the checksum line. A file whose checksum still
// matches is the agent's to rewrite or remove; one whose checksum does not match was edited by
// someone, and from then on the agent leaves it alone (and reads the 1.x knobs from it, if it is
// an ifcfg file). A file without the marker — 1.x's, the image's, an administrator's — is never
// touched either. Deleting a file hands it back to the agent.
const (
	markerPrefix   = "# Generated by ec2-net-utils for "
	checksumPrefix = "# ec2-net-utils-checksum: sha256:"
)

// withHeader prefixes the body with the marker, an explanation and the checksum.
func withHeader(p core.InterfacePlan, body []string) []byte {
	ids := p.MAC
	if p.InterfaceID != "" {
		ids = p.InterfaceID + ", " + p.MAC
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s%s (%s).\n", markerPrefix, p.Name, ids)
	b.WriteString("# Rewritten when the ENI changes, unless edited: once this file differs from what the agent\n")
	b.WriteString("# wrote (the checksum above), it is left alone. Delete it to hand it back to ec2-net-utils.\n")
	for _, l := range body {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	sum := sha256.Sum256(b.Bytes())
	out := make([]byte, 0, b.Len()+len(checksumPrefix)+66)
	first, rest, _ := bytes.Cut(b.Bytes(), []byte("\n"))
	out = append(out, first...)
	out = append(out, '\n')
	out = append(out, checksumPrefix+hex.EncodeToString(sum[:])+"\n"...)
	return append(out, rest...)
}

// Owner says who a file on disk belongs to.
type Owner int

const (
	// Foreign: no marker. 1.x's files, the image's, an administrator's.
	Foreign Owner = iota
	// Generated: the agent's, unchanged since it wrote it.
	Generated
	// Edited: the agent wrote it, someone changed it since.
	Edited
)

func (o Owner) String() string {
	switch o {
	case Generated:
		return "generated"
	case Edited:
		return "edited"
	default:
		return "foreign"
	}
}

// Ownership reads a file's header: who owns it and, for the agent's files, the interface it was
// generated for.
func Ownership(content []byte) (Owner, string) {
	first, rest, _ := bytes.Cut(content, []byte("\n"))
	name, ok := bytes.CutPrefix(first, []byte(markerPrefix))
	if !ok {
		return Foreign, ""
	}
	iface, _, _ := strings.Cut(string(name), " ")
	sumLine, body, found := bytes.Cut(rest, []byte("\n"))
	want, ok := bytes.CutPrefix(sumLine, []byte(checksumPrefix))
	if !found || !ok {
		return Edited, iface
	}
	h := sha256.New()
	h.Write(first)
	h.Write([]byte("\n"))
	h.Write(body)
	if hex.EncodeToString(h.Sum(nil)) != string(want) {
		return Edited, iface
	}
	return Generated, iface
}
