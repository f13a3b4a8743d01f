package main

import (
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func TestApplyFailsOnlyWhenAnInterfaceFailed(t *testing.T) {
	report := func(outcomes ...core.Outcome) core.Report {
		var r core.Report
		for i, o := range outcomes {
			r.Interfaces = append(r.Interfaces, core.InterfaceReport{Name: []string{"ens5", "ens6", "ens7"}[i], Outcome: o})
		}
		return r
	}
	cases := []struct {
		report core.Report
		want   string
	}{
		{report(core.Configured, core.LeftAlone, core.Deferred), ""},
		{report(core.Configured, core.Failed, core.Failed), "not configured: ens6, ens7"},
	}
	for _, c := range cases {
		err := failed(c.report)
		if (err == nil && c.want != "") || (err != nil && err.Error() != c.want) {
			t.Errorf("failed(%v) = %v, want %q", c.report.Interfaces, err, c.want)
		}
	}
}
