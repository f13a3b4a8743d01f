package core_test

import (
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func TestOwnsTableIsThePerENIBandOnly(t *testing.T) {
	for _, tc := range []struct {
		table int
		want  bool
	}{
		{254, false},  // main
		{255, false},  // local
		{0, false},    // unspec
		{9999, false}, // just below the band
		{10000, true}, // primary ENI, card 0
		{10001, true}, // device 1
		{10100, true}, // card 1
		{core.TableFor(core.MaxNetworkCard, core.SlotsPerCard-1), true},
		{core.OwnedPriorityMax + 1, false},
		{30200, false}, // NetworkManager's own tables
	} {
		if got := core.OwnsTable(tc.table); got != tc.want {
			t.Errorf("OwnsTable(%d) = %v, want %v", tc.table, got, tc.want)
		}
	}
}
