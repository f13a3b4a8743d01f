package main

import (
	"runtime/metrics"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core/reconcile"
)

// passCost wraps the loop's OnPass with a debug line of what the process allocated since the
// previous pass (the pass itself, almost all of it): the lab benchmark reads it for a no-change
// refresh (issue #16). At other log levels it is next itself and costs nothing.
func passCost(log hclog.Logger, next func(reconcile.Pass, reconcile.Result, error)) func(reconcile.Pass, reconcile.Result, error) {
	if !log.IsDebug() {
		return next
	}
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}}
	var objs, bytes uint64
	return func(p reconcile.Pass, res reconcile.Result, err error) {
		metrics.Read(sample)
		o, b := sample[0].Value.Uint64(), sample[1].Value.Uint64()
		log.Debug("pass cost", "reason", p.Reason, "allocs", o-objs, "alloc_bytes", b-bytes)
		objs, bytes = o, b
		next(p, res, err)
	}
}
