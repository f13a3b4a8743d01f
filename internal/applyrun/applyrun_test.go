package applyrun

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func threeInterfaces() core.Plan {
	return core.Plan{Interfaces: []core.InterfacePlan{
		{Name: "ens5", MAC: "02:00:00:00:05:05", Index: 2},
		{Name: "ens6", MAC: "02:00:00:00:06:06", Index: 3},
		{Name: "ens7", MAC: "02:00:00:00:07:07", Index: 4},
	}}
}

// Once the context ends, the interfaces not reached yet are reported Failed with its error, and
// neither detached interfaces are cleaned up nor the manager reloaded: the next pass does it.
func TestInterfacesNotReachedWhenCancelledFailWithTheContextError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var ran []string
	detached, reloaded := false, false
	rep, err := Run(ctx, "test", threeInterfaces(), nil, Steps{
		Interface: func(_ context.Context, p core.InterfacePlan, ch *core.Changes) core.InterfaceReport {
			ran = append(ran, p.Name)
			ch.Written = append(ch.Written, p.Name)
			cancel() // the daemon is stopping while ens5 is applied
			return Configured(nil)
		},
		Detached: func(context.Context, Present, *core.Changes) error { detached = true; return nil },
		Reload:   func(context.Context, *core.Changes) error { reloaded = true; return nil },
	})
	if !slices.Equal(ran, []string{"ens5"}) || detached || reloaded {
		t.Errorf("ran %v, detached %v, reloaded %v; want ens5 only, nothing after", ran, detached, reloaded)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	want := []core.Outcome{core.Configured, core.Failed, core.Failed}
	for i, ir := range rep.Interfaces {
		if ir.Outcome != want[i] || ir.Name != threeInterfaces().Interfaces[i].Name {
			t.Errorf("interface %d: %+v, want %s", i, ir, want[i])
		}
		if ir.Outcome == core.Failed && !errors.Is(ir.Err, context.Canceled) {
			t.Errorf("%s failed with %v, want the context's error", ir.Name, ir.Err)
		}
	}
	if rep.Settled(threeInterfaces()) {
		t.Error("a cancelled pass is reported settled")
	}
}

func TestOutcomesAndErrorsAreCollectedInPlanOrder(t *testing.T) {
	boom := errors.New("boom")
	reloadErr := errors.New("reload failed")
	outcomes := map[string]core.InterfaceReport{
		"ens5": Configured(nil),
		"ens6": LeftAlone("unmanaged"),
		"ens7": Deferred("IPv6 router advertisement", nil),
	}
	plan := threeInterfaces()
	plan.Interfaces = append(plan.Interfaces, core.InterfacePlan{Name: "ens8", MAC: "02:00:00:00:08:08", Index: 5})
	outcomes["ens8"] = Deferred("IPv6 router advertisement", boom) // a real error wins over a wait
	var present Present
	rep, err := Run(context.Background(), "test", plan, []core.Link{{Name: "eth9", MAC: "02:00:00:00:09:09", Index: 9}}, Steps{
		Interface: func(_ context.Context, p core.InterfacePlan, _ *core.Changes) core.InterfaceReport {
			return outcomes[p.Name]
		},
		Detached: func(_ context.Context, pr Present, _ *core.Changes) error { present = pr; return nil },
		Reload:   func(context.Context, *core.Changes) error { return reloadErr },
	})
	if !errors.Is(err, boom) || !errors.Is(err, reloadErr) {
		t.Errorf("error %v, want ens8's and the reload's", err)
	}
	var got []core.Outcome
	for _, ir := range rep.Interfaces {
		got = append(got, ir.Outcome)
	}
	if want := []core.Outcome{core.Configured, core.LeftAlone, core.Deferred, core.Failed}; !slices.Equal(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	if ir, _ := rep.Outcome("02:00:00:00:06:06"); ir.Reason != "unmanaged" || ir.Name != "ens6" {
		t.Errorf("ens6: %+v", ir)
	}
	if !present.Names["eth9"] || !present.Names["ens8"] || !present.MACs["02:00:00:00:05:05"] || present.ByIndex[9] != "eth9" {
		t.Errorf("present = %+v, want the links and the planned interfaces", present)
	}
}

func TestDryRunExecutorRecordsAndRunsNothing(t *testing.T) {
	for _, dry := range []bool{true, false} {
		e := NewExecutor(dry)
		ran := 0
		e.Begin()
		_ = e.Do("write", "/x", func() error { ran++; return nil })
		_ = e.Do("reload", "m", func() error { ran++; return nil })
		if want := map[bool]int{true: 0, false: 2}[dry]; ran != want {
			t.Errorf("dry=%v: ran %d actions, want %d", dry, ran, want)
		}
		if got := e.Actions(); !slices.Equal(got, []string{"write /x", "reload m"}) {
			t.Errorf("dry=%v: actions %v", dry, got)
		}
		e.Begin()
		if len(e.Actions()) != 0 {
			t.Errorf("Begin kept the last Apply's actions")
		}
	}
}
