package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ec2-net-utils/ec2-net-utils/backends"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/reconcile"
)

func newApplyCommand(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Reconcile once: make the network manager's configuration match IMDS, then exit",
		Long: `apply does what the daemon does at start: read IMDS and the links, plan, and have the
backend write what differs (and reload its manager only if something changed). It prints what
changed and, per interface, what the backend did: configured, left-alone (and why), deferred (and
what it waits for) or failed; it exits 1 if any interface failed. With --dry-run it prints what
would change and changes nothing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.agent(cmd, backends.Options{DryRun: dryRun})
			if err != nil {
				return err
			}
			defer a.Close()
			var opts []reconcile.Option
			if dryRun {
				opts = append(opts, reconcile.DryRun())
			}
			r, err := a.reconciler(a.imds.Waiting(), opts...)
			if err != nil {
				return err
			}
			res, err := r.Once(cmd.Context(), reconcile.Pass{Reason: "apply", Fetch: true, Full: true})
			if err != nil && res.Report.Interfaces == nil {
				return err // nothing applied: no report to show
			}
			// Right after a change the manager is still applying it: a rule missing now is not
			// missing for long, and restoring it would race the manager. Interfaces the backend
			// leaves alone are not in the plan the reconciler restores rules, routes and addresses from.
			if err == nil && !res.Report.Changed() {
				if _, err := r.Restore(nil); err != nil {
					return err
				}
			}
			if dryRun {
				if _, err := fmt.Fprintf(cmd.OutOrStdout(), "dry run: %s backend would make these changes:\n", a.selection.Name()); err != nil {
					return err
				}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if encErr := enc.Encode(res.Report); encErr != nil {
				return encErr
			}
			return errors.Join(err, failed(res.Report))
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would change; write nothing, reload nothing")
	return cmd
}

// failed names the interfaces the report says failed; their errors are in Apply's error already,
// this makes sure the exit code says so even from a backend that reported only the outcome.
func failed(report core.Report) error {
	var names []string
	for _, ir := range report.Interfaces {
		if ir.Outcome == core.Failed {
			names = append(names, ir.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("not configured: %s", strings.Join(names, ", "))
}
