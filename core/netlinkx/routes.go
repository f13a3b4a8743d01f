package netlinkx

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// ErrNoRARouter is returned (wrapped) by EnsureRoutes for a route whose gateway is the router
// learned from router advertisements when no RA has installed a default route on the link yet.
// It is a "not yet", not a failure: the route can be installed once the RA arrives.
var ErrNoRARouter = errors.New("no router advertisement seen on the link yet")

// SplitRAWait separates the "not yet" of ErrNoRARouter from real failures in an error of
// EnsureRoutes, which joins one error per route: waits reports whether a route waits for a router
// advertisement, rest joins every other error (nil when there is none). Testing the joined error
// with errors.Is alone would take a real failure next to a wait for a wait.
func SplitRAWait(err error) (waits bool, rest error) {
	if err == nil {
		return false, nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range joined.Unwrap() {
			w, r := SplitRAWait(e)
			waits = waits || w
			errs = append(errs, r)
		}
		return waits, errors.Join(errs...)
	}
	if errors.Is(err, ErrNoRARouter) {
		return true, nil
	}
	return false, err
}

// RoutesInTable lists the unicast routes of both families in table, as they are: a route via an
// RA-learned router reports that router's link-local address as its Gateway.
// Equivalent to: ip route show table <table>; ip -6 route show table <table>
func (h *Handle) RoutesInTable(table int) ([]core.Route, error) {
	if table <= 0 {
		return nil, fmt.Errorf("netlinkx: list routes: invalid table %d", table)
	}
	routes, err := h.tableRoutes(table)
	if err != nil {
		return nil, err
	}
	var out []core.Route
	for _, r := range routes {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		out = append(out, fromNetlinkRoute(r))
	}
	return out, nil
}

// EnsureRoutes makes each route exist in its table through the link and returns the routes it
// had to write. A route whose destination is already routed the same way (same link, same
// gateway) is left alone, so a second call writes nothing; otherwise it is replaced. On-link
// routes are written before gateway routes: the kernel accepts a gateway only when it can reach
// it, and in an ENI table that is through the subnet route. Routes with GatewayFromRA use the
// gateway of the RA-learned default route on the link (see ErrNoRARouter).
// A route's Metric, Source, Protocol and OnLink are used when set (a restore putting back the route its
// manager installed); otherwise the kernel's default metric and proto static.
// Equivalent to: ip route replace <dst> [via <gw>] dev <link> table <table> proto static
// [metric <m>] [src <s>] [onlink], for each route not already in place.
func (h *Handle) EnsureRoutes(link core.Link, routes []core.Route) (replaced []core.Route, err error) {
	l, err := h.linkFor(link)
	if err != nil {
		return nil, err
	}
	ordered := slices.Clone(routes)
	slices.SortStableFunc(ordered, func(a, b core.Route) int {
		return boolInt(hasGateway(a)) - boolInt(hasGateway(b))
	})
	index := l.Attrs().Index
	tables := map[int][]netlink.Route{}
	var errs []error
	for _, r := range ordered {
		if r.Table <= 0 || !r.Destination.IsValid() {
			errs = append(errs, fmt.Errorf("netlinkx: route %s: table and destination must be set", r.On(l.Attrs().Name)))
			continue
		}
		gw := r.Gateway
		if r.GatewayFromRA {
			if gw, err = h.raRouter(l); err != nil {
				errs = append(errs, fmt.Errorf("netlinkx: route %s: %w", r.On(l.Attrs().Name), err))
				continue
			}
		}
		current, ok := tables[r.Table]
		if !ok {
			if current, err = h.tableRoutes(r.Table); err != nil {
				errs = append(errs, err)
				continue
			}
			tables[r.Table] = current
		}
		dst := r.Destination.Masked()
		if slices.ContainsFunc(current, func(c netlink.Route) bool {
			cr := fromNetlinkRoute(c)
			return c.Type == unix.RTN_UNICAST && c.LinkIndex == index && cr.Destination == dst && cr.Gateway == gw
		}) {
			continue
		}
		nr := &netlink.Route{
			LinkIndex: index,
			Dst:       ipNet(dst),
			Table:     r.Table,
			Protocol:  netlink.RouteProtocol(cmp.Or(r.Protocol, unix.RTPROT_STATIC)),
			Priority:  r.Metric,
			Scope:     netlink.SCOPE_LINK,
			Family:    familyOf(dst),
		}
		if r.Source.IsValid() {
			nr.Src = net.IP(r.Source.Unmap().AsSlice())
		}
		if r.OnLink {
			nr.Flags = int(netlink.FLAG_ONLINK)
		}
		if gw.IsValid() {
			nr.Gw = net.IP(gw.Unmap().AsSlice())
			nr.Scope = netlink.SCOPE_UNIVERSE
		}
		if err := h.nl.RouteReplace(nr); err != nil {
			errs = append(errs, fmt.Errorf("netlinkx: replace route %s: %w", r.On(l.Attrs().Name), err))
			continue
		}
		replaced = append(replaced, r)
	}
	return replaced, errors.Join(errs...)
}

// DeleteRoutesInTable empties a table we own (ifcfg backend cleanup after a detach) and returns
// how many routes it deleted. The kernel's own tables are refused: their routes are never ours.
// Equivalent to: ip route flush table <table>; ip -6 route flush table <table>
func (h *Handle) DeleteRoutesInTable(table int) (deleted int, err error) {
	switch table {
	case unix.RT_TABLE_UNSPEC, unix.RT_TABLE_DEFAULT, unix.RT_TABLE_MAIN, unix.RT_TABLE_LOCAL:
		return 0, fmt.Errorf("netlinkx: refusing to flush table %d: not an ENI table", table)
	}
	if table < 0 {
		return 0, fmt.Errorf("netlinkx: flush table: invalid table %d", table)
	}
	routes, err := h.tableRoutes(table)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, r := range routes {
		err := h.nl.RouteDel(&r)
		switch {
		case err == nil:
			deleted++
		case errors.Is(err, unix.ESRCH), errors.Is(err, unix.ENOENT):
		default:
			errs = append(errs, fmt.Errorf("netlinkx: delete route %s from table %d: %w", r.Dst, table, err))
		}
	}
	return deleted, errors.Join(errs...)
}

// tableRoutes dumps every route of both families in one table. netlink treats table 0 in a
// filter as "all tables"; callers rule it out first.
func (h *Handle) tableRoutes(table int) ([]netlink.Route, error) {
	return retryDump(fmt.Sprintf("list routes in table %d", table), func() ([]netlink.Route, error) {
		return h.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	})
}

// raRouter is the gateway of the default route the kernel learned from router advertisements on
// the link (main table, "default via fe80::... dev <link> proto ra").
func (h *Handle) raRouter(l netlink.Link) (netip.Addr, error) {
	routes, err := retryDump("list IPv6 routes of "+l.Attrs().Name, func() ([]netlink.Route, error) {
		return h.nl.RouteListFiltered(netlink.FAMILY_V6,
			&netlink.Route{Table: unix.RT_TABLE_MAIN, LinkIndex: l.Attrs().Index},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF)
	})
	if err != nil {
		return netip.Addr{}, err
	}
	for _, r := range routes {
		if gw, ok := raDefault(r); ok {
			return gw, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: %w", l.Attrs().Name, ErrNoRARouter)
}

// raRouters maps the index of every link with an RA default route in the main table to its router.
func (h *Handle) raRouters() (map[int]netip.Addr, error) {
	routes, err := retryDump("list IPv6 routes of the main table", func() ([]netlink.Route, error) {
		return h.nl.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, err
	}
	out := map[int]netip.Addr{}
	for _, r := range routes {
		if gw, ok := raDefault(r); ok {
			out[r.LinkIndex] = gw
		}
	}
	return out, nil
}

// raDefault returns the router of a default route learned from router advertisements.
func raDefault(r netlink.Route) (netip.Addr, bool) {
	cr := fromNetlinkRoute(r)
	if r.Protocol == unix.RTPROT_RA && cr.Destination.Bits() == 0 && cr.Gateway.IsLinkLocalUnicast() {
		return cr.Gateway, true
	}
	return netip.Addr{}, false
}

func fromNetlinkRoute(r netlink.Route) core.Route {
	out := core.Route{Table: r.Table, Metric: r.Priority, Protocol: int(r.Protocol), OnLink: r.Flags&int(netlink.FLAG_ONLINK) != 0}
	if src, ok := netip.AddrFromSlice(r.Src); ok {
		out.Source = src.Unmap()
	}
	if p, ok := prefixOf(r.Dst); ok {
		out.Destination = p.Masked()
	} else if r.Family == netlink.FAMILY_V6 {
		out.Destination = anyPrefix(core.IPv6)
	} else {
		out.Destination = anyPrefix(core.IPv4)
	}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		out.Gateway = gw.Unmap()
	}
	return out
}

func hasGateway(r core.Route) bool { return r.Gateway.IsValid() || r.GatewayFromRA }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
