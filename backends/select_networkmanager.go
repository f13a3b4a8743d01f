package backends

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/backends/networkmanager"
	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/dbusname"
)

func networkManagerCandidate() candidate {
	return candidate{
		name:      conf.BackendNetworkManager,
		lookedFor: "NetworkManager owning org.freedesktop.NetworkManager on the system bus and managing the ENIs",
		detect: func(ctx context.Context, e *env) (bool, string, error) {
			if e.bus == nil {
				return false, "", fmt.Errorf("no system bus: %w", e.busErr)
			}
			running, err := dbusname.HasOwner(ctx, e.bus, dbusname.NetworkManager)
			if err != nil || !running {
				return false, "", err
			}
			// NM may run next to the manager that really owns the ENIs (netplan hands them to
			// networkd and marks them unmanaged in NM): it counts only if it manages one.
			enis := eniLinks(e.Links, e.Config.Interfaces.Drivers)
			if len(enis) == 0 {
				return true, "NetworkManager owns org.freedesktop.NetworkManager on the system bus (no ENI link present to check)", nil
			}
			managed, err := networkmanager.Managed(ctx, e.bus, enis)
			if err != nil || len(managed) == 0 {
				return false, "", err
			}
			return true, "NetworkManager owns org.freedesktop.NetworkManager on the system bus and manages " +
				strings.Join(managed, ", "), nil
		},
		build: func(e *env) (core.Backend, error) {
			if e.bus == nil {
				return nil, errors.Join(errors.New("no system bus to reach NetworkManager"), e.busErr)
			}
			opts := networkmanager.Options{
				Bus:     e.bus,
				Persist: e.Config.NetworkManager.Persist,
				Logger:  e.Logger.Named("networkmanager"),
				DryRun:  e.DryRun,
			}
			// Without a handle only the ENI tables' IPv6 default routes fail (ENIs with IPv6).
			if e.Netlink != nil {
				opts.Kernel = e.Netlink
			}
			return networkmanager.New(opts), nil
		},
	}
}

// eniLinks are the links whose driver can be an ENI's.
func eniLinks(links []core.Link, drivers []string) []core.Link {
	var out []core.Link
	for _, l := range links {
		if slices.Contains(drivers, l.Driver) {
			out = append(out, l)
		}
	}
	return out
}
