package networkd

import (
	"context"
	"fmt"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

var _ core.Describer = (*Backend)(nil)

// Carriers implements core.Describer: the .network file networkd reports for the link, then the
// agent's files for the interface on disk (its own .network file, or drop-ins for the active
// one). A user's file in /etc that masks ours is the one in use, ours is listed after it.
func (b *Backend) Carriers(_ context.Context, p core.InterfacePlan) ([]core.Carrier, error) {
	var reported string
	if p.Index > 0 {
		var err error
		if reported, err = b.files.NetworkFile(p.Index); err != nil {
			return nil, fmt.Errorf("networkd: %s: %w", p.Name, err)
		}
	}
	owned, err := scanOwned(b.dir)
	if err != nil {
		return nil, err
	}
	var out []core.Carrier
	if reported != "" {
		out = append(out, core.Carrier{Name: reported, InUse: true})
	}
	for _, o := range owned {
		switch {
		case o.iface != p.Name:
		case o.path == reported:
			out[0].Ours = true
		default:
			out = append(out, core.Carrier{Name: o.path, Ours: true})
		}
	}
	return out, nil
}
