package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ec2-net-utils/ec2-net-utils/backends"
	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func newPlanCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the desired state of every ENI present, changing nothing",
		Long: `plan reads IMDS and the local links and prints, for every ENI, the route table, rule
priority, metric, source rules, secondary addresses, routes and altnames the agent would
configure, ENIs that are pending and why, and the backend that would apply them.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.agent(cmd, backends.Options{DryRun: true})
			if err != nil {
				return err
			}
			defer a.Close()
			plan, err := a.currentPlan(cmd.Context())
			if err != nil {
				return err
			}
			out := planOutput{Backend: a.selection.Name(), BackendReason: a.selection.Describe(), Plan: plan}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if _, err := fmt.Fprintf(cmd.OutOrStdout(), "backend: %s (%s)\n\n", out.Backend, out.BackendReason); err != nil {
				return err
			}
			return core.WriteText(cmd.OutOrStdout(), plan)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	return cmd
}

// planOutput is the `plan --json` document: the plan plus which backend would apply it.
type planOutput struct {
	Backend       string `json:"backend"`
	BackendReason string `json:"backend_reason"`
	core.Plan
}
