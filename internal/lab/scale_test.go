package lab

import (
	"fmt"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func TestScaleENIsSplitsTwoCardsAndKeepsTwoXNumbering(t *testing.T) {
	specs, err := ScaleENIs(Scale{ENIs: 32, IPs: 50, Prefixes: 4, Spares: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 34 {
		t.Fatalf("got %d specs, want 34", len(specs))
	}
	tables := map[int]string{}
	attached := 0
	for i, s := range specs {
		if err := s.normalize(); err != nil {
			t.Fatalf("spec %d does not normalize: %v", i, err)
		}
		if s.Slot != i || s.Name != fmt.Sprintf("ens%d", 5+i) {
			t.Errorf("spec %d: slot %d name %s", i, s.Slot, s.Name)
		}
		if len(s.PrivateIPs) != 50 || len(s.IPv4Prefixes) != 4 {
			t.Errorf("%s: %d IPs, %d prefixes; want 50, 4", s.Name, len(s.PrivateIPs), len(s.IPv4Prefixes))
		}
		table := core.TableFor(s.NetworkCard, s.DeviceNumber)
		if other, dup := tables[table]; dup {
			t.Errorf("%s and %s share table %d", s.Name, other, table)
		}
		tables[table] = s.Name
		if s.Attached {
			attached++
		}
		if s.Attached != (i < 32) {
			t.Errorf("%s: attached %v", s.Name, s.Attached)
		}
	}
	if attached != 32 {
		t.Errorf("%d attached, want 32", attached)
	}
	// Half on each card, each numbering its devices from 0: tables 10000..10015 and 10100..10115.
	for _, want := range []struct {
		i, card, dev int
	}{{0, 0, 0}, {15, 0, 15}, {16, 1, 0}, {31, 1, 15}, {32, 1, 16}, {33, 1, 17}} {
		s := specs[want.i]
		if s.NetworkCard != want.card || s.DeviceNumber != want.dev {
			t.Errorf("%s: card %d device %d, want card %d device %d", s.Name, s.NetworkCard, s.DeviceNumber, want.card, want.dev)
		}
	}
	// An address is never inside a prefix: the source check would be ambiguous.
	if got, want := specs[3].PrivateIPs[49], ScaleIP(3, 49); got != want || got != "10.99.3.59" {
		t.Errorf("last address %s, ScaleIP %s, want 10.99.3.59", got, want)
	}
	if got := specs[3].IPv4Prefixes[0]; got != "10.99.3.64/28" {
		t.Errorf("first prefix %s, want 10.99.3.64/28", got)
	}
}

func TestScaleENIsStaysOnOneCardUpTo15(t *testing.T) {
	specs, err := ScaleENIs(Scale{ENIs: 8, IPs: 1, Spares: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range specs {
		if s.NetworkCard != 0 || s.DeviceNumber != i {
			t.Errorf("%s: card %d device %d, want card 0 device %d", s.Name, s.NetworkCard, s.DeviceNumber, i)
		}
	}
}

func TestScaleENIsRejectsWhatDoesNotFit(t *testing.T) {
	for _, s := range []Scale{
		{ENIs: 0, IPs: 1},
		{ENIs: 40, IPs: 1, Spares: 2},
		{ENIs: 2, IPs: 0},
		{ENIs: 2, IPs: 54},
		{ENIs: 2, IPs: 1, Prefixes: 13},
		{ENIs: 2, IPs: 1, Spares: -1},
	} {
		if _, err := ScaleENIs(s); err == nil {
			t.Errorf("ScaleENIs(%+v): no error", s)
		}
	}
}
