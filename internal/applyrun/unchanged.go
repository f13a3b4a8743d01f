package applyrun

import "context"

type unchangedKey struct{}

// WithUnchanged tells Run which planned interfaces (by MAC) have exactly the plan the backend
// last applied and settled: an attach then applies only the new ENI, a new secondary IP only its
// ENI, in the backends that opt in (Steps.SkipUnchanged), instead of re-checking every ENI
// through the manager — at 32 ENIs that re-check was most of an attach (issue #16). Full passes,
// which must repair what drifted, never carry it.
func WithUnchanged(ctx context.Context, macs map[string]bool) context.Context {
	if len(macs) == 0 {
		return ctx
	}
	return context.WithValue(ctx, unchangedKey{}, macs)
}

func unchanged(ctx context.Context) map[string]bool {
	m, _ := ctx.Value(unchangedKey{}).(map[string]bool)
	return m
}
