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
			fmt.Fprintf(&b, "  route:    %s\n", routeText(rt, ifc.Name))
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

func routeText(rt Route, dev string) string {
	dst := rt.Destination.String()
	if rt.Destination.Bits() == 0 {
		dst = "default"
	}
	switch {
	case rt.Gateway.IsValid():
		return fmt.Sprintf("%s via %s dev %s table %d", dst, rt.Gateway, dev, rt.Table)
	case rt.GatewayFromRA:
		return fmt.Sprintf("%s via <router advertisement> dev %s table %d", dst, dev, rt.Table)
	default:
		return fmt.Sprintf("%s dev %s scope link table %d", dst, dev, rt.Table)
	}
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
