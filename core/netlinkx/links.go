package netlinkx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/netnsx"
)

// Links lists every link with its name, index, MAC (lower case), netlink kind and driver.
// Equivalent to: ip -d link show, plus ethtool -i <link> for the driver.
//
// The driver comes from the ETHTOOL_GDRVINFO ioctl, which answers for virtual drivers too (veth
// says "veth") and, unlike sysfs, in any netns; /sys/class/net/<name>/device/driver is the
// fallback. Both are looked up by name, so a driver is reported only when the name still has the
// index netlink reported in the place the lookup ran: a link renamed meanwhile, or a handle from
// another netns used without InNetns, gives an empty driver, which the planner treats as "not an
// ENI" until the next event, rather than a driver read off an unrelated link.
func (h *Handle) Links() ([]core.Link, error) {
	links, err := retryDump("list links", h.nl.LinkList)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cached := make(map[driverKey]string, len(links))
	var drv *driverLookup // opened only when a link is not cached yet
	defer func() {
		if drv != nil {
			drv.close()
		}
	}()
	out := make([]core.Link, 0, len(links))
	for _, l := range links {
		cl := toCoreLink(l)
		key := driverKey{index: cl.Index, name: cl.Name, mac: cl.MAC}
		d, ok := h.drivers[key]
		if !ok {
			if drv == nil {
				opened, err := h.openDriverLookup()
				if err != nil {
					return nil, err
				}
				drv = &opened
			}
			d = drv.driver(cl.Name, cl.Index)
		}
		if d != "" { // an empty answer (e.g. a rename raced the lookup) is asked again next time
			cached[key] = d
		}
		cl.Driver = d
		out = append(out, cl)
	}
	h.drivers = cached // drop links that are gone
	return out, nil
}

// EnsureAltnames gives the link every name in names it does not already carry and returns the
// ones it added; it never removes an altname.
// Equivalent to: ip link property add dev <link> altname <name>, for each missing name.
func (h *Handle) EnsureAltnames(link core.Link, names []string) (added []string, err error) {
	l, err := h.linkFor(link)
	if err != nil {
		return nil, err
	}
	attrs := l.Attrs()
	var errs []error
	for _, name := range names {
		if name == attrs.Name || slices.Contains(attrs.AltNames, name) || slices.Contains(added, name) {
			continue
		}
		err := h.nl.LinkAddAltName(l, name)
		switch {
		case err == nil:
			added = append(added, name)
		case errors.Is(err, unix.EEXIST):
			// Not ours (checked above), so another link holds the name, e.g. an ENI that was
			// detached and whose successor took its device number before the old link vanished.
			owner := "another link"
			if o, lerr := h.nl.LinkByName(name); lerr == nil {
				owner = o.Attrs().Name
			}
			errs = append(errs, fmt.Errorf("netlinkx: altname %s for %s: already used by %s: %w", name, attrs.Name, owner, err))
		default:
			errs = append(errs, fmt.Errorf("netlinkx: add altname %s to %s: %w", name, attrs.Name, err))
		}
	}
	return added, errors.Join(errs...)
}

// linkFor resolves a core.Link by index (by name when the index is unknown). It refuses a link
// whose MAC differs from the one given, so that an index reused after a hot-unplug is never
// configured as the ENI that left.
func (h *Handle) linkFor(link core.Link) (netlink.Link, error) {
	var (
		l   netlink.Link
		err error
	)
	if link.Index > 0 {
		l, err = h.nl.LinkByIndex(link.Index)
	} else {
		l, err = h.nl.LinkByName(link.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("netlinkx: find link %s (index %d): %w", link.Name, link.Index, err)
	}
	if mac := l.Attrs().HardwareAddr.String(); link.MAC != "" && !strings.EqualFold(mac, link.MAC) {
		return nil, fmt.Errorf("netlinkx: link index %d is now %s with MAC %s, not %s with MAC %s",
			link.Index, l.Attrs().Name, mac, link.Name, link.MAC)
	}
	return l, nil
}

func toCoreLink(l netlink.Link) core.Link {
	a := l.Attrs()
	kind := l.Type()
	if kind == "device" {
		// netlink's name for "no IFLA_INFO_KIND": physical devices (and lo).
		kind = ""
	}
	return core.Link{
		Name:  a.Name,
		Index: a.Index,
		MAC:   strings.ToLower(a.HardwareAddr.String()),
		Kind:  kind,
	}
}

// driverLookup answers "which driver runs this link" through an ethtool socket opened in the
// handle's netns, with sysfs as the fallback.
type driverLookup struct {
	fd      int    // AF_INET socket for ioctls; -1 if none
	sysRoot string // usually /sys
}

// openDriverLookup opens the ioctl socket in the handle's netns. Sockets stay in the netns they
// were created in, so only the creation needs the netns switch.
func (h *Handle) openDriverLookup() (driverLookup, error) {
	fd, err := socketIn(h.ns)
	if err != nil {
		return driverLookup{fd: -1}, fmt.Errorf("netlinkx: open ethtool socket: %w", err)
	}
	return driverLookup{fd: fd, sysRoot: "/sys"}, nil
}

func (d driverLookup) close() {
	if d.fd >= 0 {
		unix.Close(d.fd)
	}
}

func (d driverLookup) driver(name string, index int) string {
	if d.fd >= 0 && d.ioctlIndex(name) == index {
		info, err := unix.IoctlGetEthtoolDrvinfo(d.fd, name)
		if err == nil {
			if s := unix.ByteSliceToString(info.Driver[:]); s != "" {
				return s
			}
		}
	}
	return d.sysfsDriver(name, index)
}

// ioctlIndex is the index of name in the socket's netns, or -1.
func (d driverLookup) ioctlIndex(name string) int {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return -1
	}
	if err := unix.IoctlIfreq(d.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return -1
	}
	return int(ifr.Uint32())
}

// sysfsDriver reads /sys/class/net/<name>/device/driver. sysfs shows the netns of whoever mounted
// it, so the ifindex file must agree with netlink first.
func (d driverLookup) sysfsDriver(name string, index int) string {
	if d.sysRoot == "" || name == "" || strings.ContainsRune(name, '/') {
		return ""
	}
	dir := filepath.Join(d.sysRoot, "class", "net", name)
	b, err := os.ReadFile(filepath.Join(dir, "ifindex"))
	if err != nil {
		return ""
	}
	if i, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || i != index {
		return ""
	}
	target, err := os.Readlink(filepath.Join(dir, "device", "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// socketIn opens an AF_INET datagram socket (the kind ethtool uses) in ns, or in the current
// netns when ns is not open.
func socketIn(ns netns.NsHandle) (int, error) {
	fd := -1
	err := netnsx.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, err
	}
	return fd, nil
}
