package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/backends"
	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core"
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
}

// newAgent connects to IMDS (lazily: no request is sent here), netlink and, when a backend is
// needed, the network manager.
func newAgent(ctx context.Context, cfg conf.Config, log hclog.Logger, opts backends.Options) (*agent, error) {
	endpoint := cfg.IMDS.Endpoint
	if endpoint == "" {
		// The SDK's own variable, honoured explicitly so the log says which endpoint is used.
		endpoint = os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
	}
	if endpoint == "" {
		// IPv6-only instances reach IMDS only on its IPv6 address; the client keeps whichever answers.
		log.Debug("IMDS endpoint not configured: trying IPv4, then IPv6", "endpoints", []string{imds.EndpointIPv4, imds.EndpointIPv6})
	}
	client, err := imds.New(imds.Options{
		Endpoint:           endpoint,
		Timeout:            cfg.IMDS.Timeout,
		MaxAttempts:        cfg.IMDS.MaxAttempts,
		MaxBackoff:         cfg.IMDS.MaxBackoff,
		PropagationTimeout: cfg.IMDS.PropagationTimeout,
		Version:            version,
		Logger:             log.Named("imds"),
	})
	if err != nil {
		return nil, fmt.Errorf("IMDS client: %w", err)
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	a := &agent{cfg: cfg, log: log, imds: client, nl: nl, kernel: netlinkx.New(nl)}
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

func (a *agent) reconciler(opts ...reconcile.Option) (*reconcile.Reconciler, error) {
	if a.selection.Backend == nil {
		// No manager to drive is for a human to fix (install one, or set backend): exit 2, which
		// the unit does not restart in a loop.
		return nil, usageError{a.selection.Err}
	}
	return reconcile.New(a.imds, a.kernel, a.selection.Backend, a.cfg.PlanOptions(), a.log, opts...), nil
}

// currentPlan reads IMDS and the links once and plans, without touching anything.
func (a *agent) currentPlan(ctx context.Context) (core.Plan, error) {
	inst, err := a.imds.Snapshot(ctx, nil)
	if err != nil {
		return core.Plan{}, fmt.Errorf("read IMDS: %w", err)
	}
	links, err := a.kernel.Links()
	if err != nil {
		return core.Plan{}, fmt.Errorf("list links: %w", err)
	}
	plan := core.NewPlan(inst, links, a.cfg.PlanOptions())
	if adj, ok := a.selection.Backend.(core.PlanAdjuster); ok {
		// What the daemon would apply: the manager's per-interface settings (ifcfg's knobs) included.
		plan = adj.AdjustPlan(plan)
	}
	return plan, nil
}
