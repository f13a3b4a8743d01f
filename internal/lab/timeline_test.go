package lab

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// On EC2 the link often comes before IMDS knows the ENI: the lab reproduces that order, fills the
// keys in one at a time, and withdraws them on detach. A card-1 ENI without network-card on the
// primary serves the mixed tree of issue #11.
func TestAttachLaggingLinkFirstThenIMDSKeyByKey(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	ctx := context.Background()
	l, err := New(ctx, Options{
		Name:     testPrefix,
		Scenario: &scenario.Scenario{InstanceID: "i-0123456789abcdef1", MAC: "02:00:00:00:05:05"},
		Logf:     t.Logf,
		ENIs: []ENISpec{
			{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", Attached: true, OmitNetworkCard: true},
			{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1, NetworkCard: 1},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	nl, err := l.InstanceNetlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()

	if _, ok := l.IMDS().Scenario().Interfaces["02:00:00:00:05:05"][core.KeyNetworkCard]; ok {
		t.Error("OmitNetworkCard: the primary still serves network-card")
	}
	var linkBeforeListing bool
	script := func(mac string, keys map[string]scenario.Value) []fakeimds.Step {
		steps := fakeimds.AttachSteps(mac, keys, 300*time.Millisecond, 50*time.Millisecond)
		// Checked when IMDS is about to list the ENI: the link must already be in the instance.
		_, err := nl.LinkByName("ens6")
		_, listed := l.IMDS().Scenario().Interfaces[mac]
		linkBeforeListing = err == nil && !listed
		return steps
	}
	played, err := l.AttachLagging(ctx, "ens6", script)
	if err != nil {
		t.Fatal(err)
	}
	if !linkBeforeListing {
		t.Error("the link was not in the instance before IMDS listed the ENI")
	}
	if len(played.Steps) != 7 || played.Steps[0].Key != "" || !played.Last().After(played.At[0]) {
		t.Errorf("played %v", played.Steps)
	}
	if got := l.IMDS().Scenario().Interfaces["02:00:00:00:06:06"][core.KeyNetworkCard]; !slices.Equal(got, scenario.Value{"1"}) {
		t.Errorf("network-card = %q after the attach, want 1", got)
	}

	if _, err := l.DetachLagging(ctx, "ens6", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.IMDS().Scenario().Interfaces["02:00:00:00:06:06"]; ok {
		t.Error("IMDS still lists the detached ENI")
	}
	if _, err := nl.LinkByName("ens6"); err == nil {
		t.Error("ens6 still in the instance after the detach")
	}
	// Attached again, it publishes what IMDS had (as a plain Attach does).
	if err := l.Attach("ens6"); err != nil {
		t.Fatal(err)
	}
	if got := l.IMDS().Scenario().Interfaces["02:00:00:00:06:06"][core.KeyDeviceNumber]; !slices.Equal(got, scenario.Value{"1"}) {
		t.Errorf("device-number after re-attach = %q", got)
	}
}
