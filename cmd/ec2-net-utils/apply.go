package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ec2-net-utils/ec2-net-utils/backends"
	"github.com/ec2-net-utils/ec2-net-utils/core/reconcile"
)

func newApplyCommand(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Reconcile once: make the network manager's configuration match IMDS, then exit",
		Long: `apply does what the daemon does at start: read IMDS and the links, plan, and have the
backend write what differs (and reload its manager only if something changed). With --dry-run it
prints what would change and changes nothing.`,
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
			r, err := a.reconciler(opts...)
			if err != nil {
				return err
			}
			res, err := r.Once(cmd.Context(), reconcile.Pass{Reason: "apply", Fetch: true, Full: true})
			if err != nil {
				return err
			}
			// Right after a change the manager is still applying it: a rule missing now is not
			// missing for long, and restoring it would race the manager.
			if !res.Changes.Changed() {
				if _, err := r.RestoreRules(); err != nil {
					return err
				}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if dryRun {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "dry run: %s backend would make these changes:\n", a.selection.Name())
				if err != nil {
					return err
				}
			}
			return enc.Encode(res.Changes)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would change; write nothing, reload nothing")
	return cmd
}
