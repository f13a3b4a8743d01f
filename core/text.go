package core

import "fmt"

// String prints the rule the way `ip rule` does: "10001: from 10.0.1.5 lookup 10001".
func (r Rule) String() string {
	return fmt.Sprintf("%d: from %s lookup %d", r.Priority, hostOrPrefix(r.From.String()), r.Table)
}

// Text prints the route the way `ip route` does, through dev.
func (rt Route) Text(dev string) string { return routeText(rt, dev) }
