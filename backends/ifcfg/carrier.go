package ifcfg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

var _ core.Describer = (*Backend)(nil)

// Carriers implements core.Describer: the interface's files that exist, in the order of Kinds.
// ifcfg-<iface> is the one ifup reads (the image's for the primary ENI); a file is ours while it
// is as the agent generated it, and an edited one is the administrator's.
func (b *Backend) Carriers(_ context.Context, p core.InterfacePlan) ([]core.Carrier, error) {
	if err := validName(p.Name); err != nil {
		return nil, err
	}
	var out []core.Carrier
	for _, k := range Kinds {
		path := b.paths.FileName(k, p.Name)
		content, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ifcfg: %s: %w", p.Name, err)
		}
		owner, _ := Ownership(content)
		out = append(out, core.Carrier{Name: path, InUse: k == KindIfcfg, Ours: owner == Generated})
	}
	return out, nil
}
