package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ec2-net-utils/ec2-net-utils/backends"
	"github.com/ec2-net-utils/ec2-net-utils/core/status"
)

// exitNotOK is status's answer when something is missing, a stale rule remains or the daemon
// does not run: distinct from 1 (status itself failed, e.g. IMDS unreachable) and 2 (usage).
const exitNotOK = 3

// notOK makes run exit with exitNotOK without printing an error: the report said it all.
type notOK struct{}

func (notOK) Error() string { return "not ok" }

func newStatusCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [IFACE|MAC...]",
		Short: "Show, per ENI, whether the host matches the desired state, and the daemon's state",
		Long: `status compares what the agent would configure (as plan computes it, from IMDS and the
links) with what the kernel has: for every ENI, the backend and the files or profile that carry
its configuration, its source rules, the routes of its table, its secondary addresses and its
altnames, each ok, missing or unexpected. It lists the ENIs pending and what each waits for,
those left alone and why, the rules of an ENI that is gone, and other tools' rules in the
agent's priority band (shown, never touched). It says whether the daemon runs and what its last
passes did. It changes nothing and works without the daemon.
Exit status 0 when everything is ok and the daemon runs, 3 when not.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			a, err := g.agent(cmd, backends.Options{DryRun: true})
			if err != nil {
				return err
			}
			defer a.Close()
			plan, err := a.currentPlan(cmd.Context())
			if err != nil {
				return err
			}
			obs, err := status.Observe(plan, a.kernel)
			if err != nil {
				return err
			}
			obs.Config = status.Describe(cmd.Context(), plan, a.selection.Backend)
			st, running, err := readDaemonState(g.stateFile)
			if err != nil {
				return err
			}
			out := statusOutput{
				Daemon:  daemonOutput{Running: running},
				Backend: a.selection.Name(), BackendReason: a.selection.Describe(),
				Report: status.Compare(plan, obs).Select(names),
			}
			if running {
				out.Daemon.State = &st
				// Its fds and threads, for a leak check from outside (goroutines: the debug log).
				if n, err := processResources(strconv.Itoa(st.PID)); err == nil {
					out.Daemon.Resources = &n
				}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				err = enc.Encode(out)
			} else {
				err = writeStatusText(cmd.OutOrStdout(), out, time.Now())
			}
			if err != nil {
				return err
			}
			if !out.Report.OK || !running {
				return notOK{}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// statusOutput is the `status --json` document.
type statusOutput struct {
	Daemon        daemonOutput `json:"daemon"`
	Backend       string       `json:"backend"`
	BackendReason string       `json:"backend_reason"`
	status.Report
}

type daemonOutput struct {
	Running   bool         `json:"running"`
	State     *daemonState `json:"state,omitempty"`
	Resources *resources   `json:"resources,omitempty"`
}

func writeStatusText(w io.Writer, out statusOutput, now time.Time) error {
	var b strings.Builder
	if !out.Daemon.Running {
		b.WriteString("daemon:  NOT RUNNING (systemctl status ec2-net-utils.service); the comparison below is current\n")
	} else {
		st := out.Daemon.State
		ago := func(t time.Time) string { return now.Sub(t).Round(time.Second).String() + " ago" }
		fmt.Fprintf(&b, "daemon:  running, pid %d, %s, started %s", st.PID, st.Version, ago(st.Started))
		if !st.Ready {
			b.WriteString(", first pass not done yet")
		}
		b.WriteByte('\n')
		imds := "answering"
		if !st.IMDSAnswering {
			imds = "NOT ANSWERING"
		}
		fmt.Fprintf(&b, "imds:    %s %s since %s\n", st.IMDSEndpoint, imds, ago(st.IMDSSince))
		if c := st.LastChange; c != nil {
			fmt.Fprintf(&b, "changed: %s (%s): %s\n", ago(c.At), c.Reason, changesText(c))
		}
		if e := st.LastError; e != nil {
			fmt.Fprintf(&b, "error:   %s (%s): %s\n", ago(e.At), e.Reason, e.Error)
		}
	}
	fmt.Fprintf(&b, "backend: %s (%s)\n\n", out.Backend, out.BackendReason)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return status.WriteText(w, out.Report)
}

func changesText(p *passInfo) string {
	c := p.Changes
	if !c.Changed() {
		return "nothing to change"
	}
	var parts []string
	if len(c.Written) > 0 {
		parts = append(parts, "wrote "+strings.Join(c.Written, ", "))
	}
	if len(c.Removed) > 0 {
		parts = append(parts, "removed "+strings.Join(c.Removed, ", "))
	}
	parts = append(parts, fmt.Sprintf("%d reloads", c.Reloads))
	return strings.Join(parts, "; ")
}
