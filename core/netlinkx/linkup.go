package netlinkx

import (
	"fmt"
	"net"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// SetUp brings the link up and reports whether it was down. Backends that configure a link
// themselves (ifcfg) need it up before the kernel accepts routes through it.
// Equivalent to: ip link set dev <link> up
func (h *Handle) SetUp(link core.Link) (bool, error) {
	l, err := h.linkFor(link)
	if err != nil {
		return false, err
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return false, nil
	}
	if err := h.nl.LinkSetUp(l); err != nil {
		return false, fmt.Errorf("netlinkx: set %s up: %w", l.Attrs().Name, err)
	}
	return true, nil
}
