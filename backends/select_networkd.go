package backends

import (
	"context"
	"fmt"

	"github.com/ec2-net-utils/ec2-net-utils/backends/networkd"
	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/dbusname"
)

func networkdCandidate() candidate {
	return candidate{
		name:      conf.BackendNetworkd,
		lookedFor: "systemd-networkd owning org.freedesktop.network1 on the system bus",
		detect: func(ctx context.Context, e *env) (bool, string, error) {
			if e.bus == nil {
				return false, "", fmt.Errorf("no system bus: %w", e.busErr)
			}
			running, err := dbusname.HasOwner(ctx, e.bus, dbusname.Networkd)
			return running, "systemd-networkd owns org.freedesktop.network1 on the system bus", err
		},
		build: func(e *env) (core.Backend, error) {
			var reloader networkd.Reloader = unavailableReloader{e.busErr}
			if e.bus != nil {
				reloader = networkd.NewDBusReloader(e.bus)
			}
			// Without a handle only ENIs with IPv6 fail: their rules and addresses go in by netlink.
			var kernel networkd.Kernel
			if e.Netlink != nil {
				kernel = e.Netlink
			}
			return networkd.New(networkd.Options{
				Dir:      e.Config.Networkd.Dir,
				Reloader: reloader,
				Kernel:   kernel,
				Logger:   e.Logger.Named("networkd"),
				DryRun:   e.DryRun,
			}), nil
		},
	}
}

// unavailableReloader reports, at reload time, that there was no bus: files are still written, so
// networkd picks them up when it (re)starts.
type unavailableReloader struct{ err error }

func (u unavailableReloader) Reload(context.Context) error {
	return fmt.Errorf("no system bus to ask systemd-networkd to reload: %w", u.err)
}

func (u unavailableReloader) ReconfigureLink(context.Context, int) error {
	return fmt.Errorf("no system bus to ask systemd-networkd to reconfigure a link: %w", u.err)
}
