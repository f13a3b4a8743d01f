package core

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints a plan for people, in the words of `ip rule` and `ip route`, so what it shows
// can be compared line by line with what the kernel shows.
func WriteText(w io.Writer, p Plan) error {
	var b strings.Builder
	for i, ifc := range p.Interfaces {
		if i > 0 {
			b.WriteByte('\n')
		}
		role := "secondary ENI"
		if ifc.Primary {
			role = "primary ENI"
		}
		fmt.Fprintf(&b, "%s %s (%s, %s) device %d card %d: table %d, priority %d, metric %d\n",
			ifc.Name, ifc.MAC, ifc.InterfaceID, role, ifc.DeviceNumber, ifc.NetworkCard, ifc.Table, ifc.Priority, ifc.Metric)
		if ifc.PrimaryIPv4.IsValid() {
			fmt.Fprintf(&b, "  dhcp:     %s in %s\n", ifc.PrimaryIPv4, ifc.SubnetIPv4)
		}
		main := "main table default route: yes"
		if !ifc.MainDefaultRoute {
			main = "main table default route: no"
		}
		fmt.Fprintf(&b, "  %s\n", main)
		for _, r := range ifc.Rules {
			fmt.Fprintf(&b, "  rule:     %s\n", r)
		}
		for _, a := range ifc.Addresses {
			fmt.Fprintf(&b, "  address:  %s dev %s noprefixroute\n", a, ifc.Name)
		}
		for _, rt := range ifc.Routes {
			fmt.Fprintf(&b, "  route:    %s\n", rt.On(ifc.Name))
		}
		if len(ifc.Altnames) > 0 {
			fmt.Fprintf(&b, "  altnames: %s\n", strings.Join(ifc.Altnames, " "))
		}
	}
	if len(p.Pending) > 0 {
		b.WriteString("\npending:\n")
		for _, pe := range p.Pending {
			name := pe.Name
			if name == "" {
				name = "-"
			}
			fmt.Fprintf(&b, "  %s %s: %s\n", pe.MAC, name, pe.Reason)
		}
	}
	if len(p.Ignored) > 0 {
		b.WriteString("\nignored:\n")
		for _, ig := range p.Ignored {
			fmt.Fprintf(&b, "  %s %s: %s\n", ig.Name, ig.MAC, ig.Reason)
		}
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "\nwarning: %s\n", w)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// String prints the rule the way `ip rule show` does: "10001: from 10.0.1.5 lookup 10001".
func (r Rule) String() string {
	from := "all"
	if r.From.IsValid() && r.From.Bits() > 0 {
		from = hostOrPrefix(r.From.String())
	}
	return fmt.Sprintf("%d: from %s lookup %d", r.Priority, from, r.Table)
}

// String prints the route the way `ip route` does: "default via 10.0.1.1 table 10001".
func (rt Route) String() string { return rt.On("") }

// On prints the route through the link dev ("" leaves the device out), the way `ip route` does:
// "default via 10.0.1.1 dev ens6 table 10001", "10.0.1.0/24 dev ens6 scope link table 10001".
func (rt Route) On(dev string) string {
	var b strings.Builder
	if rt.Destination.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(rt.Destination.Masked().String())
	}
	switch {
	case rt.Gateway.IsValid():
		b.WriteString(" via " + rt.Gateway.String())
	case rt.GatewayFromRA:
		b.WriteString(" via <router advertisement>")
	}
	if dev != "" {
		b.WriteString(" dev " + dev)
	}
	if !rt.Gateway.IsValid() && !rt.GatewayFromRA {
		b.WriteString(" scope link")
	}
	fmt.Fprintf(&b, " table %d", rt.Table)
	return b.String()
}

// hostOrPrefix prints host prefixes the way `ip rule` does: without /32 or /128.
func hostOrPrefix(s string) string {
	if before, ok := strings.CutSuffix(s, "/32"); ok {
		return before
	}
	if before, ok := strings.CutSuffix(s, "/128"); ok {
		return before
	}
	return s
}
