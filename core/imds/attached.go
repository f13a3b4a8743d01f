package imds

import (
	"context"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Attached reads what a pass for new links needs: the macs/ listing, in full the ENIs with the
// MACs of the new links and any ENI the last read did not have, and what the pending ones still
// miss; every other ENI is as the last read had it (a refresh keeps their addresses current).
// The new links' ENIs are read in full even if the last read had them: a re-attached ENI keeps
// its MAC but may get another device number. One hot attach on a host with 32 ENIs costs about
// 8 requests instead of a full read's 2 + 7 per ENI (issue #16). Before any read, it is Snapshot
// without reuse.
func (c *Client) Attached(ctx context.Context, macs []string) (core.Instance, error) {
	reread := make(map[string]bool, len(macs))
	for _, m := range macs {
		reread[normMAC(m)] = true
	}
	return c.look(ctx, reread)
}
