package networkmanager

import (
	"context"
	"errors"
	"fmt"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v3"
	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

var _ core.RestartWatcher = (*Backend)(nil)

// startupWait bounds how long WatchRestarts waits for a restarted NM to finish taking its devices
// up (its Startup property); startupPoll is the interval it asks at.
const (
	startupWait = 30 * time.Second
	startupPoll = 100 * time.Millisecond
)

// WatchRestarts implements core.RestartWatcher. An NM restart assumes the activations its device
// state names: on an ENI the agent took over by Reapply (runOnBase) that is the base profile, with
// the base's own settings, so main gets the base's metric back. The kernel keeps the ENI's rules,
// table routes and addresses, and nothing the daemon watches tells it. NM's new owner of its bus
// name does; once NM reports its startup done, the channel gets a value.
func (b *Backend) WatchRestarts(ctx context.Context) (<-chan struct{}, error) {
	if b.bus == nil {
		return nil, errors.New("networkmanager: no bus to watch NetworkManager's restarts on")
	}
	match := []dbus.MatchOption{
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, nmDest),
	}
	if err := b.bus.AddMatchSignalContext(ctx, match...); err != nil {
		return nil, fmt.Errorf("networkmanager: watch NetworkManager's restarts: %w", err)
	}
	signals := make(chan *dbus.Signal, 8)
	b.bus.Signal(signals)
	came, out := make(chan struct{}, 1), make(chan struct{}, 1)
	// The signals are drained apart from the wait: a full channel would hold up godbus's reader,
	// and with it the replies the wait asks for on the same connection.
	go func() {
		defer func() {
			b.bus.RemoveSignal(signals)
			_ = b.bus.RemoveMatchSignal(match...)
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-signals:
				if nmCameBack(sig) {
					notify(came)
				}
			}
		}
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-came:
				b.waitStartup(ctx)
				b.log.Info("NetworkManager restarted; comparing every ENI again")
				notify(out)
			}
		}
	}()
	return out, nil
}

// notify leaves one value in ch unless one is already waiting.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// nmCameBack reports a NameOwnerChanged giving NM's bus name a new owner.
func nmCameBack(sig *dbus.Signal) bool {
	if sig == nil || sig.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(sig.Body) != 3 {
		return false
	}
	name, _ := sig.Body[0].(string)
	owner, _ := sig.Body[2].(string)
	return name == nmDest && owner != ""
}

// waitStartup waits, bounded, until NM says it has tried to activate what it activates at start:
// a pass before that would find devices NM has not assumed again yet.
func (b *Backend) waitStartup(ctx context.Context) {
	deadline := time.Now().Add(startupWait)
	for time.Now().Before(deadline) {
		var starting bool
		err := dbusNM{conn: b.bus}.property(ctx, nmPath, gonm.NetworkManagerInterface, "Startup", &starting)
		if err == nil && !starting {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(startupPoll):
		}
	}
	b.log.Warn("NetworkManager still starting up after its restart; comparing every ENI now", "waited", startupWait)
}
