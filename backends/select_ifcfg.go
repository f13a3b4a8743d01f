package backends

import (
	"context"
	"errors"

	"github.com/ec2-net-utils/ec2-net-utils/backends/ifcfg"
	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func ifcfgCandidate() candidate {
	return candidate{
		name:      conf.BackendIfcfg,
		lookedFor: "initscripts: the ifcfg directory, with neither NetworkManager nor systemd-networkd running",
		detect: func(ctx context.Context, e *env) (bool, string, error) {
			return ifcfg.Detect(ctx, e.bus, e.Config.Ifcfg.Dir)
		},
		build: func(e *env) (core.Backend, error) {
			if e.Netlink == nil {
				return nil, errors.New("no netlink handle: the ifcfg backend applies rules, routes and addresses itself")
			}
			c := e.Config.Ifcfg
			return ifcfg.New(ifcfg.Options{
				Dir:                   c.Dir,
				DHClientConfDir:       c.DHClientConfDir,
				AssignPrefixAddresses: e.Config.Interfaces.AssignPrefixAddresses,
				BroadcastRenewals:     c.BroadcastRenewals,
				Kernel:                e.Netlink,
				DHCP: &ifcfg.DHClient{
					Script:   c.DHClientScript,
					ConfDir:  c.DHClientConfDir,
					PidDir:   ifcfg.DefaultPidDir,
					LeaseDir: ifcfg.DefaultLeaseDir(),
				},
				Logger: e.Logger.Named("ifcfg"),
				DryRun: e.DryRun,
			})
		},
	}
}
