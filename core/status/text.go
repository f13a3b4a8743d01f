package status

import (
	"fmt"
	"io"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// WriteText prints the report for a human, one line per item, like `networkctl status`.
func WriteText(w io.Writer, r Report) error {
	var b strings.Builder
	for i, e := range r.ENIs {
		if i > 0 {
			b.WriteByte('\n')
		}
		role := "secondary ENI"
		if e.Primary {
			role = "primary ENI"
		}
		verdict := "ok"
		if !e.OK {
			n := 0
			for _, it := range e.Items {
				if it.State == Missing {
					n++
				}
			}
			verdict = fmt.Sprintf("NOT OK: %d missing", n)
		}
		fmt.Fprintf(&b, "%s %s (%s, %s) device %d card %d: table %d, priority %d: %s\n",
			e.Name, e.MAC, e.InterfaceID, role, e.DeviceNumber, e.NetworkCard, e.Table, e.Priority, verdict)
		writeConfig(&b, e.Config)
		for _, it := range e.Items {
			fmt.Fprintf(&b, "  %-8s %-10s %s\n", it.Kind, it.State, it.What)
		}
	}
	if len(r.Pending) > 0 {
		b.WriteString("\npending (not configured yet):\n")
		for _, p := range r.Pending {
			name := p.Name
			if name == "" {
				name = "(no link)"
			}
			fmt.Fprintf(&b, "  %s %s: %s\n", p.MAC, name, p.Reason)
		}
	}
	if len(r.Ignored) > 0 {
		b.WriteString("\nleft alone:\n")
		for _, i := range r.Ignored {
			fmt.Fprintf(&b, "  %s %s: %s\n", i.Name, i.MAC, i.Reason)
		}
	}
	writeRules(&b, "\nstale rules (of an ENI that is gone; the agent's next pass removes them):\n", r.Stale)
	writeRules(&b, fmt.Sprintf("\nforeign rules in the agent's band %d-%d (someone else's; never touched):\n",
		core.OwnedPriorityMin, core.OwnedPriorityMax), r.Foreign)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeConfig prints one line per file or profile that carries the ENI's configuration, in the
// column layout of the items, the backend in the state column.
func writeConfig(b *strings.Builder, c *Config) {
	if c == nil {
		return
	}
	line := func(what string) { fmt.Fprintf(b, "  %-8s %-10s %s\n", "config", c.Backend, what) }
	switch {
	case c.Error != "":
		line("unknown: " + c.Error)
	case len(c.Carriers) == 0:
		line("none yet (the agent's next pass writes it)")
	}
	for _, cr := range c.Carriers {
		var roles []string
		if cr.InUse {
			roles = append(roles, "in use")
		}
		if cr.Ours {
			roles = append(roles, "ours")
		}
		if len(roles) == 0 {
			line(cr.Name)
		} else {
			line(cr.Name + " (" + strings.Join(roles, ", ") + ")")
		}
	}
}

func writeRules(b *strings.Builder, title string, rules []core.Rule) {
	if len(rules) == 0 {
		return
	}
	b.WriteString(title)
	for _, r := range rules {
		fmt.Fprintf(b, "  %s\n", r)
	}
}
