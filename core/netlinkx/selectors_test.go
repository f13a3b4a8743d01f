package netlinkx

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The VPC CNI's per-pod rules are not plain source rules (Rules leaves them out); Selectors
// shows them with their selectors, so host-mode detection can recognise them.
func TestSelectorsListEveryShapeInTheRange(t *testing.T) {
	n := newTestNetns(t)
	toPod := netlink.NewRule()
	toPod.Priority, toPod.Table, toPod.Dst = 512, unix.RT_TABLE_MAIN, mustIPNet("10.0.1.20/32")
	fromPod := netlink.NewRule()
	fromPod.Priority, fromPod.Table, fromPod.Src, fromPod.Dst = 1536, 2, mustIPNet("10.0.1.20/32"), mustIPNet("10.0.0.0/16")
	outside := netlink.NewRule()
	outside.Priority, outside.Table, outside.Src = 100, 200, mustIPNet("192.0.2.0/24")
	for _, r := range []*netlink.Rule{toPod, fromPod, outside} {
		if err := n.nl.RuleAdd(r); err != nil {
			t.Fatalf("ip rule add %v: %v", r, err)
		}
	}
	got, err := New(n.nl).Selectors(512, 1536)
	if err != nil {
		t.Fatal(err)
	}
	want := []Selector{
		{Priority: 512, Table: unix.RT_TABLE_MAIN, To: netip.MustParsePrefix("10.0.1.20/32")},
		{Priority: 1536, Table: 2, From: netip.MustParsePrefix("10.0.1.20/32"), To: netip.MustParsePrefix("10.0.0.0/16")},
	}
	sortSel := cmpopts.SortSlices(func(a, b Selector) bool { return a.Priority < b.Priority })
	if diff := cmp.Diff(want, got, netipEqual, sortSel); diff != "" {
		t.Errorf("Selectors(512, 1536) (-want +got):\n%s", diff)
	}
}
