package main

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netns"

	"github.com/ec2-net-utils/ec2-net-utils/backends"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
	"github.com/ec2-net-utils/ec2-net-utils/core/reconcile"
)

func newDaemonCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "daemon",
		Short: "Run the agent: react to attach and detach at once, refresh from IMDS periodically",
		Long: `daemon reconciles every ENI at start (a no-op on a correct host), then follows netlink
link events (attach, detach, rename) and acts at once, polls IMDS every refresh_interval for new
secondary addresses and prefixes (writing and reloading nothing when nothing changed), and
restores the source rules, ENI-table routes and secondary addresses someone else deleted. It tells systemd it is ready (Type=notify) after the
first pass that could read IMDS, or after 30 s without one, and stops cleanly on SIGTERM.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if os.Getenv("GOMAXPROCS") == "" {
				// The daemon's work is small and serialised on one goroutine; with one P, an idle
				// refresh costs fewer thread wake-ups (measured: about a fifth less CPU on a VM).
				runtime.GOMAXPROCS(1)
			}
			a, err := g.agent(cmd, backends.Options{})
			if err != nil {
				return err
			}
			defer a.Close()
			cfg, log := a.cfg, a.log
			r, err := a.reconciler(a.imds)
			if err != nil {
				return err
			}
			// netns.None(): watch our own namespace without entering it. Entering it, even our
			// own, is setns(2), which needs CAP_SYS_ADMIN; the unit grants CAP_NET_ADMIN only.
			events, err := netlinkx.Subscribe(ctx, netns.None())
			if err != nil {
				return fmt.Errorf("subscribe to netlink events: %w", err)
			}
			var restarts <-chan struct{}
			if w, ok := a.selection.Backend.(core.RestartWatcher); ok {
				if restarts, err = w.WatchRestarts(ctx); err != nil {
					log.Warn("cannot watch the network manager's restarts; full refreshes still compare every ENI", "error", err)
				}
			}
			state := newStateWriter(g.stateFile, a, time.Now)
			log.Info("started", "version", version, "backend", a.selection.Name(), "why", a.selection.Reason,
				"refresh_interval", cfg.RefreshInterval)
			err = r.Run(ctx, triggers(ctx.Done(), events, restarts, log), reconcile.LoopOptions{
				RefreshInterval:     cfg.RefreshInterval,
				FullRefreshEvery:    cfg.Daemon.FullRefreshEvery,
				RuleRestoreInterval: cfg.Daemon.RuleRestoreInterval,
				PropagationTimeout:  cfg.IMDS.PropagationTimeout,
				OnPass: passCost(log, func(p reconcile.Pass, res reconcile.Result, err error) {
					state.onPass(p, res, err)
					if p.Full && log.IsDebug() {
						// Counted at full passes only: cheap, and enough to see a leak grow.
						if n, err := ownResources(); err == nil {
							log.Debug("resources", "goroutines", n.Goroutines, "fds", n.FDs, "threads", n.Threads)
						}
					}
				}),
				// READY=1 after the first pass that read IMDS (network-online.target then means
				// "the ENIs present are configured"), or after the timeout without one, so a boot
				// with IMDS down goes on; the loop keeps retrying.
				Ready: func(ok bool) {
					state.ready()
					if ok {
						log.Info("ready: first reconcile done") // the lab and e2e wait for this line
					}
					// Not running under systemd is fine (the lab, a shell): SdNotify is then a no-op.
					if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
						log.Warn("cannot notify systemd", "error", err)
					}
				},
			})
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			log.Info("stopped")
			return err
		},
	}
}

// triggers turns netlink events, and the network manager's restarts, into work for the reconcile
// loop. restarts may be nil.
func triggers(done <-chan struct{}, events <-chan netlinkx.Event, restarts <-chan struct{}, log hclog.Logger) <-chan reconcile.Trigger {
	out := make(chan reconcile.Trigger, 64)
	go func() {
		defer close(out)
		for {
			var t reconcile.Trigger
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				if t, ok = triggerOf(ev, log); !ok {
					continue
				}
			case <-restarts:
				t = reconcile.Trigger{Kind: reconcile.ManagerRestarted}
			}
			select {
			case out <- t:
			case <-done:
				return
			}
		}
	}()
	return out
}

// triggerOf is the loop's trigger for a netlink event, if it is one the loop acts on.
func triggerOf(ev netlinkx.Event, log hclog.Logger) (reconcile.Trigger, bool) {
	switch ev.Kind {
	case netlinkx.LinkAdded:
		return reconcile.Trigger{Kind: reconcile.LinkAdded, Link: ev.Link}, true
	case netlinkx.LinkRenamed:
		return reconcile.Trigger{Kind: reconcile.LinkRenamed, Link: ev.Link}, true
	case netlinkx.LinkRemoved:
		return reconcile.Trigger{Kind: reconcile.LinkRemoved, Link: ev.Link}, true
	case netlinkx.RuleRemoved:
		return reconcile.Trigger{Kind: reconcile.RuleRemoved, Rule: ev.Rule}, true
	case netlinkx.RouteRemoved:
		return reconcile.Trigger{Kind: reconcile.RouteRemoved, Link: ev.Link, Route: ev.Route}, true
	case netlinkx.AddressRemoved:
		return reconcile.Trigger{Kind: reconcile.AddressRemoved, Link: ev.Link, Address: ev.Address}, true
	case netlinkx.RouterChanged:
		return reconcile.Trigger{Kind: reconcile.RouterChanged, Link: ev.Link, Router: ev.Router}, true
	case netlinkx.Resync:
		if ev.Err != nil {
			log.Warn("netlink events may have been lost; re-reading everything", "error", ev.Err)
		}
		return reconcile.Trigger{Kind: reconcile.Resync}, true
	}
	return reconcile.Trigger{}, false
}
