package reconcile

import (
	"context"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// attachReader is a Snapshotter that can read only what new links need (imds.Client.Attached):
// the listing, their ENIs in full, the other ENIs as last read.
type attachReader interface {
	Attached(ctx context.Context, macs []string) (core.Instance, error)
}

// readsAdded reports whether a pass's IMDS read may be limited to the ENIs of its new links: it
// is full only because links were added (Pass.Added), there is a last snapshot to take the other
// ENIs from, and the Snapshotter can.
func (r *Reconciler) readsAdded(pass Pass) (attachReader, bool) {
	ar, ok := r.imds.(attachReader)
	return ar, ok && pass.Full && pass.Added != "" && r.last != nil
}

// mergeAdded is the Added of two merged passes: a pass that must read everything (Full without
// Added: start, resync, a full refresh) makes the merged one read everything too.
func mergeAdded(a, b Pass) string {
	if a.Full && a.Added == "" || b.Full && b.Added == "" {
		return ""
	}
	return strings.TrimSpace(a.Added + " " + b.Added)
}
