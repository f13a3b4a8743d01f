// Package backends chooses the backend that applies plans: the one the configuration names, or,
// with backend = "auto", the first candidate whose network manager runs here and owns the ENIs.
package backends

import (
	"context"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
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
	// Links are the host's links, for detectors that ask whether a manager owns the ENIs.
	Links []core.Link
	// Netlink is the agent's netlink handle, for backends that change the kernel themselves
	// (ifcfg: rules, routes and addresses). Those backends are unavailable without it.
	Netlink *netlinkx.Handle
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

// env is what detectors and constructors share.
type env struct {
	Options
	bus    *dbus.Conn // nil when the system bus is unreachable
	busErr error
}

// candidate is one backend Select can build.
type candidate struct {
	name string
	// lookedFor says what detect checks, for the error when nothing is found.
	lookedFor string
	// detect reports whether this backend's manager runs here and owns the ENIs, and why.
	detect func(ctx context.Context, e *env) (ok bool, why string, err error)
	build  func(e *env) (core.Backend, error)
}

// candidates in detection order: NetworkManager first (where it runs it owns the links, even if
// networkd is installed), then networkd, then the legacy ifcfg files.
func candidates() []candidate {
	return []candidate{networkManagerCandidate(), networkdCandidate(), ifcfgCandidate()}
}

// Select builds the backend. It never fails outright: the caller decides whether a missing
// backend is fatal (apply, daemon) or only worth showing (plan).
func Select(ctx context.Context, o Options) Selection {
	var sel Selection
	e := &env{Options: o, bus: o.Bus}
	if e.Logger == nil {
		e.Logger = hclog.NewNullLogger()
	}
	if e.bus == nil {
		bus, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
		if err == nil {
			e.bus = bus
			sel.closers = append(sel.closers, func() { bus.Close() })
		} else {
			e.busErr = err
		}
	}

	var chosen *candidate
	all := candidates()
	if name := o.Config.Backend; name != conf.BackendAuto {
		for i := range all {
			if all[i].name == name {
				chosen = &all[i]
				sel.Reason = fmt.Sprintf("backend = %q in the configuration", name)
			}
		}
		if chosen == nil {
			sel.Err = fmt.Errorf("backend %q is not available in this version of ec2-net-utils", name)
			return sel
		}
	} else {
		var looked []string
		for i := range all {
			ok, why, err := all[i].detect(ctx, e)
			if err != nil {
				// One broken detector must not hide a manager another one finds.
				e.Logger.Warn("backend detection failed", "backend", all[i].name, "error", err)
				looked = append(looked, fmt.Sprintf("%s (%s: %v)", all[i].name, all[i].lookedFor, err))
				continue
			}
			if ok {
				chosen = &all[i]
				sel.Reason = "auto: " + why
				break
			}
			looked = append(looked, fmt.Sprintf("%s (%s)", all[i].name, all[i].lookedFor))
		}
		if chosen == nil {
			sel.Err = fmt.Errorf("backend auto: no supported network manager found; looked for %s; "+
				"set backend in /etc/ec2-net-utils.conf to choose one", strings.Join(looked, ", "))
			return sel
		}
	}
	b, err := chosen.build(e)
	if err != nil {
		sel.Err = fmt.Errorf("%s backend: %w", chosen.name, err)
		return sel
	}
	sel.Backend = b
	return sel
}
