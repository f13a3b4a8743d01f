package applyrun

import (
	"context"
	"slices"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func TestUnchangedInterfacesAreSkippedOnlyByBackendsThatOptIn(t *testing.T) {
	ctx := WithUnchanged(context.Background(), map[string]bool{"02:00:00:00:05:05": true, "02:00:00:00:06:06": true})
	for _, optIn := range []bool{true, false} {
		var ran []string
		rep, err := Run(ctx, "test", threeInterfaces(), nil, Steps{
			Interface: func(_ context.Context, p core.InterfacePlan, _ *core.Changes) core.InterfaceReport {
				ran = append(ran, p.Name)
				return Configured(nil)
			},
			SkipUnchanged: optIn,
		})
		want := []string{"ens5", "ens6", "ens7"}
		if optIn {
			want = []string{"ens7"}
		}
		if err != nil || !slices.Equal(ran, want) {
			t.Errorf("opt-in %v: ran %v (%v), want %v", optIn, ran, err, want)
		}
		if len(rep.Interfaces) != 3 || !slices.ContainsFunc(rep.Interfaces, func(ir core.InterfaceReport) bool {
			return ir.Name == "ens5" && ir.Outcome == core.Configured
		}) {
			t.Errorf("opt-in %v: report %+v, want every interface, the skipped ones Configured", optIn, rep.Interfaces)
		}
	}
}
