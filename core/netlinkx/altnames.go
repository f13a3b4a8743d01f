package netlinkx

import "github.com/ec2-net-utils/ec2-net-utils/core"

// Altnames lists the link's alternative names.
// Equivalent to: ip -d link show dev <link> (the altname lines)
func (h *Handle) Altnames(link core.Link) ([]string, error) {
	l, err := h.linkFor(link)
	if err != nil {
		return nil, err
	}
	return l.Attrs().AltNames, nil
}
