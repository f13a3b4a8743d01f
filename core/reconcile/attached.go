package reconcile

import (
	"context"
	"reflect"
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

// unchangedFor returns the interfaces whose plan is exactly what the last settled pass applied,
// that it Configured, and whose RA router is the one it applied with: backends that can then
// apply only the rest (applyrun.WithUnchanged) touch just the new ENI on an attach and just the
// changed ENI on a refresh that found a new address. A pass that must check everything (start,
// resync, full refresh: Full without Added) gets nil, and so does every pass after one the
// backend did not settle.
func (r *Reconciler) unchangedFor(pass Pass, plan core.Plan) map[string]bool {
	if pass.Full && pass.Added == "" || r.applied == nil {
		return nil
	}
	prev := make(map[string]int, len(r.applied.plan.Interfaces))
	for i, p := range r.applied.plan.Interfaces {
		prev[p.MAC] = i
	}
	out := map[string]bool{}
	for _, p := range plan.Interfaces {
		i, ok := prev[p.MAC]
		if !ok || r.routers[p.Index] != r.applied.routers[p.Index] || !reflect.DeepEqual(r.applied.plan.Interfaces[i], p) {
			continue
		}
		if ir, ok := r.applied.report.Outcome(p.MAC); ok && ir.Outcome == core.Configured {
			out[p.MAC] = true
		}
	}
	return out
}
