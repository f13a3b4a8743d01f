package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/backends"
	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/hostmode"
	"github.com/ec2-net-utils/ec2-net-utils/core/imds"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
	"github.com/ec2-net-utils/ec2-net-utils/core/reconcile"
)

// agent is everything one command needs, built from the configuration.
type agent struct {
	cfg       conf.Config
	log       hclog.Logger
	imds      *imds.Client
	nl        *netlink.Handle
	kernel    *netlinkx.Handle
	selection backends.Selection
	// host sees what the host's other tenants (the VPC CNI, an opt-out of 2.x) claim; plan,
	// apply and the daemon all plan through it, so they decide alike.
	host *hostmode.Detector
}

// newAgent connects to IMDS (lazily: no request is sent here), netlink and, when a backend is
// needed, the network manager.
func newAgent(ctx context.Context, cfg conf.Config, log hclog.Logger, opts backends.Options) (*agent, error) {
	client, err := newIMDSClient(cfg, log)
	if err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	a := &agent{cfg: cfg, log: log, imds: client, nl: nl, kernel: netlinkx.New(nl)}
	a.host = hostmode.New(hostmode.Options{ContainerHost: cfg.Interfaces.ContainerHost, Kernel: a.kernel, Logger: log})
	if opts.Links, err = a.kernel.Links(); err != nil {
		nl.Close()
		return nil, fmt.Errorf("list links: %w", err)
	}
	opts.Config = cfg
	opts.Logger = log
	opts.Netlink = a.kernel
	a.selection = backends.Select(ctx, opts)
	if a.selection.Backend != nil {
		log.Debug("backend selected", "backend", a.selection.Backend.Name(), "why", a.selection.Reason)
	}
	return a, nil
}

// agent loads the configuration (with the command line's overrides) and builds the agent, logging
// to the command's stderr.
func (g *globals) agent(cmd *cobra.Command, opts backends.Options) (*agent, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	return newAgent(cmd.Context(), cfg, newLogger(cfg.LogLevel, cmd.ErrOrStderr()), opts)
}

func (a *agent) Close() {
	a.selection.Close()
	a.nl.Close()
}

// reconciler drives the selected backend from imds: a.imds for the daemon, whose loop looks again
// for ENIs still propagating, a.imds.Waiting() for a one-shot command, which has no later pass.
func (a *agent) reconciler(imds reconcile.Snapshotter, opts ...reconcile.Option) (*reconcile.Reconciler, error) {
	if a.selection.Backend == nil {
		// No manager to drive is for a human to fix (install one, or set backend): exit 2, which
		// the unit does not restart in a loop.
		return nil, usageError{a.selection.Err}
	}
	opts = append(opts, reconcile.AdjustOptions(a.host.Adjust))
	return reconcile.New(imds, a.kernel, a.selection.Backend, a.cfg.PlanOptions(), a.log, opts...), nil
}

// currentPlan reads IMDS (waiting for ENIs still propagating, up to propagation_timeout) and the
// links once and plans, without touching anything. With a backend,
// its dry run says which interfaces it leaves alone (NetworkManager's unmanaged devices, ifcfg's
// EC2SYNC=no): the plan lists them as ignored, as the daemon treats them. A backend that cannot
// tell (its manager is not running) leaves the planner's plan as it is.
func (a *agent) currentPlan(ctx context.Context) (core.Plan, error) {
	if a.selection.Backend == nil {
		inst, err := a.imds.Waiting().Snapshot(ctx, nil)
		if err != nil {
			return core.Plan{}, fmt.Errorf("read IMDS: %w", err)
		}
		links, err := a.kernel.Links()
		if err != nil {
			return core.Plan{}, fmt.Errorf("list links: %w", err)
		}
		return core.NewPlan(inst, links, a.host.Adjust(a.cfg.PlanOptions())), nil
	}
	r := reconcile.New(a.imds.Waiting(), a.kernel, a.selection.Backend, a.cfg.PlanOptions(), a.log,
		reconcile.DryRun(), reconcile.AdjustOptions(a.host.Adjust))
	res, err := r.Once(ctx, reconcile.Pass{Reason: "plan", Fetch: true, Full: true})
	if err != nil && (res.IMDSUnreachable || res.Plan.Interfaces == nil) {
		return core.Plan{}, err // no plan at all: IMDS or the links could not be read
	}
	if err != nil {
		a.log.Warn("the backend cannot say which interfaces it leaves alone; showing the plan without that", "error", err)
	}
	return res.Plan, nil
}
