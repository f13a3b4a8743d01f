package netlinkx

import (
	"net"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func TestSetUpBringsTheLinkUpOnceAndChecksItsMAC(t *testing.T) {
	t.Parallel()
	n := newTestNetns(t)
	l := n.veth(t, "eni0", "vpc0", "02:00:00:00:00:01")
	x := New(n.nl, InNetns(n.ns))
	link := core.Link{Name: "eni0", Index: l.Attrs().Index, MAC: "02:00:00:00:00:01"}

	if changed, err := x.SetUp(link); err != nil || !changed {
		t.Fatalf("first SetUp = %v, %v; want true, nil", changed, err)
	}
	got, err := n.nl.LinkByName("eni0")
	if err != nil {
		t.Fatal(err)
	}
	if got.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("eni0 is still down")
	}
	if changed, err := x.SetUp(link); err != nil || changed {
		t.Errorf("second SetUp = %v, %v; want false, nil (already up)", changed, err)
	}

	// The index now names another link: never bring up what is not the ENI asked for.
	other := core.Link{Name: "eni0", Index: l.Attrs().Index, MAC: "02:00:00:00:00:99"}
	if _, err := x.SetUp(other); err == nil {
		t.Errorf("SetUp of a link with another MAC succeeded")
	}
}
