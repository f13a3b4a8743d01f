package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// ec2ifdown takes an ENI away from the agent (its configuration stays as it is) and ec2ifup gives
// it back, through the packaged compatibility script (here without systemd: it runs
// `ec2-net-utils apply`); status says so.
func TestEc2ifdownLeavesTheENIAloneUntilEc2ifup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		script, err := filepath.Abs("../packaging/libexec/compat")
		must(t, err)
		compat := func(args ...string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := e.l.Command(ctx, append([]string{"env", "EC2NET_COMPAT_AGENT=" + agentBin, "EC2NET_COMPAT_SYSTEMCTL=false", script}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("compat %v: %v\n%s", args, err, out)
			}
		}
		ignored := func() bool {
			doc, _ := e.status()
			return slices.ContainsFunc(doc.Ignored, func(i struct{ Name, Reason string }) bool { return i.Name == "ens6" })
		}

		compat("ec2ifscan")
		e.waitRule(ens6Rule10, true)
		if ignored() {
			t.Fatal("ens6 left alone before ec2ifdown")
		}
		compat("ec2ifdown", "ens6")
		if !ignored() {
			t.Fatal("status does not list ens6 as left alone after ec2ifdown")
		}
		// Left alone means left as it is: its configuration stays, the agent just stops changing it.
		if !e.hasRule(ens6Rule10) || len(e.filesOf("ens6")) == 0 {
			t.Errorf("ec2ifdown removed ens6's configuration: rules %v, files %v", e.rules(), e.filesOf("ens6"))
		}
		compat("ec2ifup", "ens6")
		if ignored() {
			t.Fatal("ens6 still left alone after ec2ifup")
		}
		e.waitRule(ens6Rule10, true)
		doc, _ := e.status()
		if got := doc.item("ens6", "rule", "10001: from 10.99.1.10 lookup 10001"); got != "ok" {
			t.Errorf("after ec2ifup, ens6's rule is %s", got)
		}
	})
}
