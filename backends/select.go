// Package backends chooses the backend that applies plans: the one the configuration names, or,
// with backend = "auto", the network manager that is running on the system bus.
package backends

import (
	"context"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/backends/networkd"
	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Options are what Select needs besides the configuration's backend key.
type Options struct {
	Config conf.Config
	Logger hclog.Logger
	// DryRun builds a backend that computes changes but writes and reloads nothing.
	DryRun bool
	// Bus overrides the system bus connection (tests); nil connects to the system bus
	// (DBUS_SYSTEM_BUS_ADDRESS or /run/dbus/system_bus_socket).
	Bus *dbus.Conn
}

// Selection is the outcome of Select: a backend and why it was chosen, or why none was.
type Selection struct {
	Backend core.Backend
	Reason  string
	Err     error
	closers []func()
}

// Name is the chosen backend's name, or "none".
func (s Selection) Name() string {
	if s.Backend == nil {
		return "none"
	}
	return s.Backend.Name()
}

// Describe says why, for `plan` output and logs.
func (s Selection) Describe() string {
	if s.Backend == nil && s.Err != nil {
		return s.Err.Error()
	}
	return s.Reason
}

// Close releases the bus connection.
func (s Selection) Close() {
	for _, c := range s.closers {
		c()
	}
}

// Select builds the backend. It never fails outright: the caller decides whether a missing
// backend is fatal (apply, daemon) or only worth showing (plan).
func Select(ctx context.Context, o Options) Selection {
	var sel Selection
	bus := o.Bus
	var busErr error
	if bus == nil {
		bus, busErr = dbus.ConnectSystemBus(dbus.WithContext(ctx))
		if busErr == nil {
			sel.closers = append(sel.closers, func() { bus.Close() })
		} else {
			bus = nil
		}
	}

	name := o.Config.Backend
	switch name {
	case conf.BackendNetworkd:
		sel.Reason = "backend = \"networkd\" in the configuration"
	case conf.BackendAuto:
		if bus == nil {
			sel.Err = fmt.Errorf("backend auto: cannot connect to the system bus to detect the network manager: %w", busErr)
			return sel
		}
		running, err := networkd.Running(ctx, bus)
		switch {
		case err != nil:
			sel.Err = fmt.Errorf("backend auto: ask the system bus whether systemd-networkd runs: %w", err)
			return sel
		case running:
			name = conf.BackendNetworkd
			sel.Reason = "auto: systemd-networkd owns org.freedesktop.network1 on the system bus"
		default:
			sel.Err = errors.New("backend auto: no supported network manager is running: looked for systemd-networkd " +
				"(bus name org.freedesktop.network1) on the system bus; set backend in /etc/ec2-net-utils.conf to choose one")
			return sel
		}
	default:
		sel.Err = fmt.Errorf("backend %q is not available in this version of ec2-net-utils", name)
		return sel
	}

	var reloader networkd.Reloader
	if bus != nil {
		reloader = networkd.NewDBusReloader(bus)
	} else {
		reloader = unavailableReloader{busErr}
	}
	sel.Backend = networkd.New(networkd.Options{
		Dir:      o.Config.Networkd.Dir,
		Reloader: reloader,
		Logger:   o.Logger.Named("networkd"),
		// DRYRUN-PENDING
	})
	return sel
}

// unavailableReloader reports, at reload time, that there was no bus: files are still written, so
// networkd picks them up when it (re)starts.
type unavailableReloader struct{ err error }

func (u unavailableReloader) Reload(context.Context) error {
	return fmt.Errorf("no system bus to ask systemd-networkd to reload: %w", u.err)
}
