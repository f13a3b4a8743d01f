package netlinkx

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/netnsx"
)

// EventKind says what changed.
type EventKind int

const (
	// LinkAdded: a link with an index not seen before appeared, created in or moved into the netns
	// (hot-attached ENIs arrive this way).
	LinkAdded EventKind = iota + 1
	// LinkRemoved: the link was deleted or moved out of the netns.
	LinkRemoved
	// LinkRenamed: a known index got a new name (udev renaming eth1 to ens6, for instance).
	LinkRenamed
	// RuleRemoved: an IPv4 or IPv6 rule was deleted, by anyone (networkd dropping foreign rules).
	RuleRemoved
	// AddressChanged: a global-scope address was added to a link.
	AddressChanged
	// AddressRemoved: a global-scope address was removed from a link (by anyone; also when the
	// link goes down for IPv6, or goes away).
	AddressRemoved
	// RouteRemoved: a unicast route was deleted from one of our per-ENI tables (core.OwnsTable).
	// Routes of other tables (main, local, the VPC CNI's) are not reported. The kernel does not
	// announce the IPv4 routes it flushes itself because their address or link went away (only
	// IPv6 ones): the periodic full pass finds those.
	RouteRemoved
	// RouterChanged: the IPv6 default route learned from router advertisements (main table,
	// proto ra) appeared on a link, changed router or went away. A manager re-adding the same
	// route at every RA is no change.
	RouterChanged
	// Resync: events may have been lost (the socket overflowed, ENOBUFS). The receiver must
	// re-read the whole state instead of trusting the events it saw. Anything that changes
	// after the Resync is sent is reported again, by an event or by another Resync.
	Resync
)

func (k EventKind) String() string {
	switch k {
	case LinkAdded:
		return "link-added"
	case LinkRemoved:
		return "link-removed"
	case LinkRenamed:
		return "link-renamed"
	case RuleRemoved:
		return "rule-removed"
	case AddressChanged:
		return "address-changed"
	case AddressRemoved:
		return "address-removed"
	case RouteRemoved:
		return "route-removed"
	case RouterChanged:
		return "router-changed"
	case Resync:
		return "resync"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change in the watched netns.
type Event struct {
	Kind EventKind
	// Link is the link concerned (Link*, and Address*, RouteRemoved and RouterChanged with as much
	// as is known: at least the index). For LinkRemoved it is the link as it was last seen.
	Link core.Link
	// OldName is the name before a LinkRenamed.
	OldName string
	// Rule is the deleted rule (RuleRemoved): family, from ("from all" as /0), table, priority;
	// other selectors of the rule are not reported.
	Rule core.Rule
	// Address is the address of an AddressChanged or AddressRemoved, with its prefix length.
	Address netip.Prefix
	// Route is the deleted route of a RouteRemoved, with the attributes it had (metric, preferred
	// source, protocol), so that a restore can put back the very route its manager installed.
	Route core.Route
	// Router is the RA router of a RouterChanged; zero when the link has none any more.
	Router netip.Addr
	// Err is why a Resync was needed.
	Err error
}

// eventBuffer lets a burst (an ENI attach brings a link, addresses and routes at once) wait for
// a busy receiver without stalling the socket reader.
const eventBuffer = 128

// socketBuffer is the receive buffer asked for; bigger than the default so that a burst of rule
// deletions (networkd reconfiguring) does not overflow into a Resync.
const socketBuffer = 4 << 20

// Subscribe watches the netns ns (netns.None() for the caller's own) until ctx ends, then closes
// the channel. Equivalent to: ip monitor link rule address route.
//
// It delivers LinkAdded for an index it has not seen (created or moved in), LinkRenamed when a
// known index changes name, LinkRemoved on RTM_DELLINK, RuleRemoved on RTM_DELRULE (IPv4 and
// IPv6), AddressChanged on global-scope RTM_NEWADDR, AddressRemoved on global-scope RTM_DELADDR,
// RouteRemoved on RTM_DELROUTE of a unicast route in one of our tables, RouterChanged when a link's RA
// default route in the main table changes (see routerEvent), and Resync whenever the kernel says
// it dropped messages. Links present when Subscribe returns are known and not announced:
// read the full state after Subscribe, not before, so that nothing falls between the two.
//
// One NETLINK_ROUTE socket, opened inside ns, carries all the groups, so events arrive in the
// order the kernel emitted them and an overflow costs one Resync instead of a dead subscription.
// (netlink.LinkSubscribeWithOptions, the obvious alternative for links, ends its subscription on
// the first receive error — ENOBUFS included — and would need resubscribing.) A socket that
// fails otherwise is reopened, and the reopening reported as a Resync; when that fails too the
// channel is closed early, and the caller should fall back to polling or subscribe again.
func Subscribe(ctx context.Context, ns netns.NsHandle) (<-chan Event, error) {
	return subscribe(ctx, ns, socketBuffer)
}

// subscribe lets tests shrink the receive buffer to provoke an overflow.
func subscribe(ctx context.Context, ns netns.NsHandle, rcvbuf int) (<-chan Event, error) {
	var nlh *netlink.Handle
	err := netnsx.Do(ns, func() error {
		var err error
		nlh, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		if nlh != nil {
			nlh.Close()
		}
		return nil, fmt.Errorf("netlinkx: subscribe: open netlink handle: %w", err)
	}
	w := &watcher{ns: ns, rcvbuf: rcvbuf, h: New(nlh, InNetns(ns)), out: make(chan Event, eventBuffer)}
	sock, err := w.open()
	if err != nil {
		nlh.Close()
		return nil, err
	}
	if err := w.loadLinks(); err != nil {
		sock.Close()
		nlh.Close()
		return nil, fmt.Errorf("netlinkx: subscribe: %w", err)
	}
	go w.run(ctx, sock)
	return w.out, nil
}

// watcher turns raw rtnetlink messages into Events; it knows the links seen so far so that it can
// tell an addition from a change and a rename from an update.
type watcher struct {
	ns     netns.NsHandle
	rcvbuf int
	h      *Handle
	out    chan Event
	links  map[int]core.Link // by index
	// routers is the RA router of each link's default route in the main table, by link index:
	// RouterChanged is sent only when it changes.
	routers map[int]netip.Addr
}

// open subscribes a NETLINK_ROUTE socket in the watched netns to links, IPv4 and IPv6 rules,
// addresses and routes.
func (w *watcher) open() (*nl.NetlinkSocket, error) {
	var sock *nl.NetlinkSocket
	err := netnsx.Do(w.ns, func() error {
		var err error
		sock, err = nl.Subscribe(unix.NETLINK_ROUTE,
			unix.RTNLGRP_LINK,
			unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE,
			unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR,
			unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE)
		return err
	})
	if err != nil {
		if sock != nil {
			sock.Close()
		}
		return nil, fmt.Errorf("netlinkx: subscribe: open netlink socket: %w", err)
	}
	// Forcing past rmem_max needs CAP_NET_ADMIN; without it the default size is still usable.
	if err := sock.SetReceiveBufferSize(w.rcvbuf, true); err != nil {
		_ = sock.SetReceiveBufferSize(w.rcvbuf, false)
	}
	return sock, nil
}

func (w *watcher) loadLinks() error {
	links, err := w.h.Links()
	if err != nil {
		return err
	}
	w.links = make(map[int]core.Link, len(links))
	for _, l := range links {
		w.links[l.Index] = l
	}
	routers, err := w.h.raRouters()
	if err != nil {
		return err
	}
	w.routers = routers
	return nil
}

// received is what the reader hands the event loop: a batch of messages, or the error that
// interrupted reading. fatal means the reader has stopped.
type received struct {
	msgs  []syscall.NetlinkMessage
	err   error
	fatal bool
}

func (w *watcher) run(ctx context.Context, sock *nl.NetlinkSocket) {
	defer close(w.out)
	defer w.h.nl.Close()
	for {
		in := make(chan received)
		go read(ctx, sock, in)
		fatal := w.loop(ctx, in)
		sock.Close()
		if fatal == nil {
			return // ctx ended
		}
		// The socket failed for good; a fresh one and a fresh look at the links make the state
		// consistent again, and the Resync tells the receiver to re-read too. The links are
		// reloaded before the Resync is sent so that the receiver's re-read happens after ours.
		var err error
		if sock, err = w.open(); err == nil {
			if err = w.loadLinks(); err != nil {
				sock.Close()
			}
		}
		if err != nil {
			w.emit(ctx, Event{Kind: Resync, Err: fmt.Errorf("%w; reopening failed: %w", fatal, err)})
			return
		}
		if !w.emit(ctx, Event{Kind: Resync, Err: fatal}) {
			sock.Close()
			return
		}
	}
}

// loop handles what the reader delivers until ctx ends (nil) or the reader stops (its error).
func (w *watcher) loop(ctx context.Context, in <-chan received) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-in:
			if r.fatal {
				return fmt.Errorf("netlinkx: events: %w", r.err)
			}
			if r.err != nil {
				// Link events were lost with the rest: refresh the known links before telling the
				// receiver, so that its re-read comes after ours and later events diff against it.
				err := fmt.Errorf("netlinkx: events: %w", r.err)
				if lerr := w.loadLinks(); lerr != nil {
					err = fmt.Errorf("%w; reloading links: %w", err, lerr)
				}
				if !w.emit(ctx, Event{Kind: Resync, Err: err}) {
					return nil
				}
				continue
			}
			for _, m := range r.msgs {
				for _, ev := range w.handle(m) {
					if !w.emit(ctx, ev) {
						return nil
					}
				}
			}
		}
	}
}

// read receives until ctx ends or the socket fails. ENOBUFS means the kernel dropped messages
// for this socket; the socket itself stays usable, so reading goes on after reporting it.
func read(ctx context.Context, sock *nl.NetlinkSocket, in chan<- received) {
	send := func(r received) bool {
		select {
		case in <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		msgs, from, err := sock.Receive()
		if ctx.Err() != nil {
			return // the socket was closed because ctx ended; the error is expected
		}
		if err != nil {
			fatal := !errors.Is(err, unix.ENOBUFS)
			if !fatal {
				drain(sock)
			}
			if !send(received{err: err, fatal: fatal}) || fatal {
				return
			}
			continue
		}
		if from.Pid != nl.PidKernel {
			continue // only the kernel speaks for the kernel's state
		}
		if !send(received{msgs: msgs}) {
			return
		}
	}
}

// drain discards what is queued on the socket after an overflow. The kernel reports ENOBUFS once
// and then drops further messages silently until the queue has been emptied; the queued messages
// predate the Resync and are stale anyway. Emptying the queue before the Resync is sent means
// that any message lost after the receiver starts re-reading is reported by a new ENOBUFS. The
// bound keeps a socket flooded faster than it drains from pinning the reader.
func drain(sock *nl.NetlinkSocket) {
	buf := make([]byte, nl.RECEIVE_BUFFER_SIZE)
	for range 100000 {
		_, _, err := unix.Recvfrom(sock.GetFd(), buf, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // EAGAIN: empty, and the kernel has cleared its congestion mark
		}
	}
}

func (w *watcher) emit(ctx context.Context, ev Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// handle turns one message into events (none for changes nobody asked about).
func (w *watcher) handle(m syscall.NetlinkMessage) []Event {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		return w.linkEvent(m)
	case unix.RTM_DELRULE:
		if r, ok := parseRule(m.Data); ok {
			return []Event{{Kind: RuleRemoved, Rule: r}}
		}
	case unix.RTM_NEWROUTE:
		return w.routerEvent(m)
	case unix.RTM_DELROUTE:
		evs := w.routerEvent(m)
		if index, r, ok := parseRoute(m.Data); ok && core.OwnsTable(r.Table) {
			evs = append(evs, Event{Kind: RouteRemoved, Link: w.link(index), Route: r})
		}
		return evs
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if index, p, ok := parseAddr(m.Data); ok {
			kind := AddressChanged
			if m.Header.Type == unix.RTM_DELADDR {
				kind = AddressRemoved
			}
			return []Event{{Kind: kind, Link: w.link(index), Address: p}}
		}
	}
	return nil
}

// link is the link with this index as last seen, or as much as is known (the index).
func (w *watcher) link(index int) core.Link {
	if l, known := w.links[index]; known {
		return l
	}
	return core.Link{Index: index}
}

func (w *watcher) linkEvent(m syscall.NetlinkMessage) []Event {
	// Bridge port messages (AF_BRIDGE) reuse RTM_NEWLINK/RTM_DELLINK for the port, not the
	// link: a DELLINK there means "left the bridge", not "gone".
	if len(m.Data) < unix.SizeofIfInfomsg || m.Data[0] != unix.AF_UNSPEC {
		return nil
	}
	hdr := unix.NlMsghdr(m.Header)
	nlLink, err := netlink.LinkDeserialize(&hdr, m.Data)
	if err != nil {
		return []Event{{Kind: Resync, Err: fmt.Errorf("netlinkx: events: decode link message: %w", err)}}
	}
	a := nlLink.Attrs()
	old, known := w.links[a.Index]
	if m.Header.Type == unix.RTM_DELLINK {
		delete(w.links, a.Index)
		delete(w.routers, a.Index)
		if !known {
			old = toCoreLink(nlLink)
		}
		return []Event{{Kind: LinkRemoved, Link: old}}
	}
	if !known {
		l := w.describe(nlLink)
		w.links[a.Index] = l
		return []Event{{Kind: LinkAdded, Link: l}}
	}
	cur := toCoreLink(nlLink)
	cur.Driver = old.Driver // a driver does not change under a running link
	w.links[a.Index] = cur
	if cur.Name != old.Name {
		return []Event{{Kind: LinkRenamed, Link: cur, OldName: old.Name}}
	}
	return nil
}

// routerEvent turns a change of an RA default route in the main table into a RouterChanged,
// when the link's router differs from the one seen last: networkd and NetworkManager re-add the
// route at every RA, which must not wake the receiver.
func (w *watcher) routerEvent(m syscall.NetlinkMessage) []Event {
	index, router, ok := parseRARoute(m.Data)
	if !ok {
		return nil
	}
	old, had := w.routers[index]
	switch {
	case m.Header.Type == unix.RTM_NEWROUTE && (!had || old != router):
		w.routers[index] = router
	case m.Header.Type == unix.RTM_DELROUTE && had && old == router:
		delete(w.routers, index)
		router = netip.Addr{}
	default:
		return nil
	}
	return []Event{{Kind: RouterChanged, Link: w.link(index), Router: router}}
}

// describe looks up the driver of a new link; without it the planner could not tell an ENI.
func (w *watcher) describe(l netlink.Link) core.Link {
	drv, err := w.h.openDriverLookup()
	if err != nil {
		drv = driverLookup{fd: -1, sysRoot: "/sys"}
	}
	defer drv.close()
	cl := toCoreLink(l)
	cl.Driver = drv.driver(cl.Name, cl.Index)
	return cl
}

// parseRule decodes an RTM_NEWRULE/RTM_DELRULE body: struct fib_rule_hdr (laid out like rtmsg)
// followed by FRA_* attributes.
func parseRule(b []byte) (core.Rule, bool) {
	if len(b) < unix.SizeofRtMsg {
		return core.Rule{}, false
	}
	hdr := nl.DeserializeRtMsg(b)
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofRtMsg:])
	if err != nil {
		return core.Rule{}, false
	}
	var r core.Rule
	switch hdr.Family {
	case unix.AF_INET:
		r.Family = core.IPv4
	case unix.AF_INET6:
		r.Family = core.IPv6
	default:
		return core.Rule{}, false
	}
	r.From = anyPrefix(r.Family)
	r.Table = int(hdr.Table)
	for _, a := range attrs {
		switch a.Attr.Type {
		case nl.FRA_SRC:
			if addr, ok := netip.AddrFromSlice(a.Value); ok {
				r.From = netip.PrefixFrom(addr.Unmap(), int(hdr.Src_len))
			}
		case nl.FRA_TABLE:
			if len(a.Value) >= 4 {
				r.Table = int(binary.NativeEndian.Uint32(a.Value))
			}
		case nl.FRA_PRIORITY:
			if len(a.Value) >= 4 {
				r.Priority = int(binary.NativeEndian.Uint32(a.Value))
			}
		}
	}
	return r, true
}

// parseAddr decodes an RTM_NEWADDR/RTM_DELADDR body (struct ifaddrmsg + IFA_* attributes) of a
// global-scope address.
func parseAddr(b []byte) (index int, p netip.Prefix, ok bool) {
	if len(b) < unix.SizeofIfAddrmsg {
		return 0, netip.Prefix{}, false
	}
	bits, scope := int(b[1]), b[3]
	index = int(binary.NativeEndian.Uint32(b[4:8]))
	if scope != unix.RT_SCOPE_UNIVERSE {
		return 0, netip.Prefix{}, false
	}
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofIfAddrmsg:])
	if err != nil {
		return 0, netip.Prefix{}, false
	}
	var local, address netip.Addr
	for _, a := range attrs {
		addr, ok := netip.AddrFromSlice(a.Value)
		if !ok {
			continue
		}
		switch a.Attr.Type {
		case unix.IFA_LOCAL:
			local = addr.Unmap()
		case unix.IFA_ADDRESS:
			address = addr.Unmap()
		}
	}
	// IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links
	// and equals IFA_LOCAL otherwise. IPv6 sends only IFA_ADDRESS.
	if local.IsValid() {
		address = local
	}
	p = netip.PrefixFrom(address, bits)
	return index, p, p.IsValid()
}

// parseRARoute decodes an RTM_NEWROUTE/RTM_DELROUTE body (struct rtmsg + RTA_* attributes) and
// reports the link and router of an IPv6 default route learned from router advertisements in the
// main table ("default via fe80::1 dev ens6 proto ra"); ok is false for any other route.
func parseRARoute(b []byte) (index int, router netip.Addr, ok bool) {
	if len(b) < unix.SizeofRtMsg {
		return 0, netip.Addr{}, false
	}
	hdr := nl.DeserializeRtMsg(b)
	if hdr.Family != unix.AF_INET6 || hdr.Dst_len != 0 || hdr.Protocol != unix.RTPROT_RA || hdr.Type != unix.RTN_UNICAST {
		return 0, netip.Addr{}, false
	}
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofRtMsg:])
	if err != nil {
		return 0, netip.Addr{}, false
	}
	table := uint32(hdr.Table)
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			if len(a.Value) >= 4 {
				table = binary.NativeEndian.Uint32(a.Value)
			}
		case unix.RTA_OIF:
			if len(a.Value) >= 4 {
				index = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_GATEWAY:
			if gw, ok := netip.AddrFromSlice(a.Value); ok {
				router = gw
			}
		}
	}
	if table != unix.RT_TABLE_MAIN || index == 0 || !router.IsLinkLocalUnicast() {
		return 0, netip.Addr{}, false
	}
	return index, router, true
}

// parseRoute decodes an RTM_NEWROUTE/RTM_DELROUTE body (struct rtmsg + RTA_* attributes) of a
// unicast route with an output link: the link's index, and the route with its table, destination,
// gateway, metric, preferred source, protocol and onlink flag. Multipath routes report their first hop only
// (we never write any).
func parseRoute(b []byte) (index int, r core.Route, ok bool) {
	if len(b) < unix.SizeofRtMsg {
		return 0, core.Route{}, false
	}
	hdr := nl.DeserializeRtMsg(b)
	if hdr.Type != unix.RTN_UNICAST || (hdr.Family != unix.AF_INET && hdr.Family != unix.AF_INET6) {
		return 0, core.Route{}, false
	}
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofRtMsg:])
	if err != nil {
		return 0, core.Route{}, false
	}
	fam := core.IPv4
	if hdr.Family == unix.AF_INET6 {
		fam = core.IPv6
	}
	r = core.Route{Table: int(hdr.Table), Destination: anyPrefix(fam), Protocol: int(hdr.Protocol),
		OnLink: hdr.Flags&unix.RTNH_F_ONLINK != 0}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			if len(a.Value) >= 4 {
				r.Table = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_OIF:
			if len(a.Value) >= 4 {
				index = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_DST:
			if dst, ok := netip.AddrFromSlice(a.Value); ok {
				r.Destination = netip.PrefixFrom(dst.Unmap(), int(hdr.Dst_len)).Masked()
			}
		case unix.RTA_GATEWAY:
			if gw, ok := netip.AddrFromSlice(a.Value); ok {
				r.Gateway = gw.Unmap()
			}
		case unix.RTA_PREFSRC:
			if src, ok := netip.AddrFromSlice(a.Value); ok {
				r.Source = src.Unmap()
			}
		case unix.RTA_PRIORITY:
			if len(a.Value) >= 4 {
				r.Metric = int(binary.NativeEndian.Uint32(a.Value))
			}
		}
	}
	if index == 0 || !r.Destination.IsValid() {
		return 0, core.Route{}, false
	}
	return index, r, true
}
