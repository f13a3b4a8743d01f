package networkmanager

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/internal/dbustest"
)

// fakeNMObject answers NM's Startup property: starting for the first asks, then done.
type fakeNMObject struct{ asked atomic.Int32 }

func (o *fakeNMObject) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	if name != "Startup" {
		return dbus.Variant{}, dbus.MakeFailedError(dbus.ErrMsgUnknownMethod)
	}
	return dbus.MakeVariant(o.asked.Add(1) <= 2), nil
}

// A restarted NM (its bus name gets a new owner) is reported once it says its startup is done;
// NM going away is not a restart yet.
func TestNetworkManagerRestartIsReportedOnceItsStartupIsDone(t *testing.T) {
	addr := dbustest.Start(t)
	agentBus, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer agentBus.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := New(Options{Bus: agentBus, Logger: testLogger(t)})
	restarts, err := b.WatchRestarts(ctx)
	if err != nil {
		t.Fatal(err)
	}

	start := func() (*dbus.Conn, *fakeNMObject) {
		nm, err := dbus.Connect(addr)
		if err != nil {
			t.Fatal(err)
		}
		obj := &fakeNMObject{}
		if err := nm.Export(obj, nmPath, propertiesIfce); err != nil {
			t.Fatal(err)
		}
		if reply, err := nm.RequestName(nmDest, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("request %s: %v %v", nmDest, reply, err)
		}
		return nm, obj
	}
	for i := range 2 {
		nm, obj := start()
		select {
		case <-restarts:
			if obj.asked.Load() < 3 {
				t.Errorf("start %d reported while NM still said it was starting up", i+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("start %d of NetworkManager not reported", i+1)
		}
		nm.Close() // NM stops: its name has no owner
		select {
		case <-restarts:
			t.Errorf("NM going away reported as a restart")
		case <-time.After(300 * time.Millisecond):
		}
	}
}
