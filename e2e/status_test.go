package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/core/status"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// statusDoc is the part of `ec2-net-utils status --json` these tests read.
type statusDoc struct {
	Daemon struct {
		Running bool `json:"running"`
		State   *struct {
			Ready         bool `json:"ready"`
			IMDSAnswering bool `json:"imds_answering"`
		} `json:"state"`
	} `json:"daemon"`
	Backend string      `json:"backend"`
	ENIs    []statusENI `json:"enis"`
	Pending []struct {
		MAC, Reason string
	} `json:"pending"`
	Ignored []struct {
		Name, Reason string
	} `json:"ignored"`
	Foreign []json.RawMessage `json:"foreign_rules"`
	OK      bool              `json:"ok"`
}

type statusENI struct {
	Name   string         `json:"name"`
	OK     bool           `json:"ok"`
	Config *status.Config `json:"config"`
	Items  []struct {
		Kind, What, State string
	} `json:"items"`
}

// status runs `ec2-net-utils status --json` inside the instance and returns its document and
// exit status.
//
// Right after a pass that switched a link to the agent's configuration (the first apply, or the
// daemon's first reload), the manager reconfigures that link and IMDS can be unreachable for a
// moment (connect: network is unreachable); status then prints no document and exits 1. It is
// asked again until it answers, for a few seconds: what a person would do.
func (e *env) status() (statusDoc, int) {
	e.t.Helper()
	var doc statusDoc
	var code int
	e.waitFor("status prints its document", func() (bool, error) {
		var err error
		doc, code, err = e.tryStatus()
		if err != nil {
			e.t.Logf("%v", err)
		}
		return err == nil, nil
	})
	return doc, code
}

// tryStatus is status that returns a run printing no document (status itself failed) as an error.
func (e *env) tryStatus() (statusDoc, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.l.Command(ctx, agentBin, "status", "--json", "--config", "/etc/ec2-net-utils.conf").Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return statusDoc{}, 0, fmt.Errorf("status: %w", err)
	}
	var doc statusDoc
	if err := json.Unmarshal(out, &doc); err != nil {
		return statusDoc{}, code, fmt.Errorf("status --json (exit %d): %w\n%s\n%s", code, err, out, exitStderr(ee))
	}
	return doc, code, nil
}

// assertStatusLeftAlone checks that status lists iface as left alone for a reason containing why,
// and not among the ENIs it compares.
func (e *env) assertStatusLeftAlone(iface, why string) {
	e.t.Helper()
	doc, _ := e.status()
	if !slices.ContainsFunc(doc.Ignored, func(i struct{ Name, Reason string }) bool {
		return i.Name == iface && strings.Contains(i.Reason, why)
	}) || slices.ContainsFunc(doc.ENIs, func(s statusENI) bool { return s.Name == iface }) {
		e.t.Errorf("status: left alone %+v; want %s there, not among the ENIs, for %q", doc.Ignored, iface, why)
	}
}

// config is what the status says carries an ENI's configuration (nil: nothing said).
func (d statusDoc) config(eni string) *status.Config {
	for _, e := range d.ENIs {
		if e.Name == eni {
			return e.Config
		}
	}
	return nil
}

func (d statusDoc) item(eni, kind, what string) string {
	for _, e := range d.ENIs {
		if e.Name != eni {
			continue
		}
		for _, it := range e.Items {
			if it.Kind == kind && it.What == what {
				return it.State
			}
		}
	}
	return "absent"
}

// A user's view of status: on a configured host with a pending ENI it is ok (exit 0); after a
// rule is deleted while the daemon is stopped it names the rule as missing, says the daemon does
// not run, and exits 3; a restarted daemon is seen again.
func TestStatusShowsADriftedHostAndAPendingENI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{})
		e.addForeignRules()
		// An ENI IMDS lists that has no local link (yet): a copy of ens6's keys under another MAC.
		const pendingMAC = "02:00:00:00:09:09"
		must(t, e.l.UpdateIMDS(func(sc *scenario.Scenario) {
			keys := map[string]scenario.Value{}
			for k, v := range sc.Interfaces[secondENI().MAC] {
				keys[k] = v
			}
			keys["mac"], keys["device-number"], keys["interface-id"] = scenario.Value{pendingMAC}, scenario.Value{"3"}, scenario.Value{"eni-0pending"}
			sc.Interfaces[pendingMAC] = keys
		}))
		// The unit's RuntimeDirectory, where the daemon publishes its state.
		must(t, e.l.WriteInstanceFile("/run/ec2-net-utils/.created-by-test", "", 0o644))
		e.startAgent()
		e.waitRule(ens6Rule10, true)
		e.waitFor("status ok with the daemon running", func() (bool, error) {
			// While networkd reconfigures the links after the daemon's first reload, IMDS can be
			// unreachable for a moment (connect: network is unreachable): status then exits 1.
			doc, code, err := e.tryStatus()
			if err != nil || code != 0 {
				t.Logf("status: exit %d: %+v %v", code, doc, err)
			}
			return code == 0 && doc.OK && doc.Daemon.Running, nil
		})
		doc, _ := e.status()
		if doc.Backend != bc.name || doc.Daemon.State == nil || !doc.Daemon.State.Ready || !doc.Daemon.State.IMDSAnswering {
			t.Errorf("backend %q, daemon %+v; want %s, ready, IMDS answering", doc.Backend, doc.Daemon.State, bc.name)
		}
		if got := doc.item("ens6", "rule", "10001: from 10.99.1.10 lookup 10001"); got != "ok" {
			t.Errorf("ens6's rule: %s, want ok", got)
		}
		// What carries ens6's configuration: the agent's own file or profile, in use.
		carrier := map[string]string{"networkd": "/run/systemd/network/70-ens6.network",
			"networkmanager": `profile "ec2-net-utils-ens6" uuid `, "ifcfg": "/etc/sysconfig/network-scripts/ifcfg-ens6"}[bc.name]
		if c := doc.config("ens6"); c == nil || c.Backend != bc.name || c.Error != "" || len(c.Carriers) == 0 ||
			!strings.HasPrefix(c.Carriers[0].Name, carrier) || !c.Carriers[0].InUse || !c.Carriers[0].Ours {
			t.Errorf("ens6's configuration: %+v; want %s's %q first, in use and ours", c, bc.name, carrier)
		} else {
			t.Logf("ens6's configuration: %+v", *c)
		}
		if !slices.ContainsFunc(doc.Pending, func(p struct{ MAC, Reason string }) bool { return p.MAC == pendingMAC }) {
			t.Errorf("pending %+v; want %s", doc.Pending, pendingMAC)
		}
		if len(doc.Foreign) == 0 {
			t.Error("the foreign rule in the band (10005: from all lookup main) is not shown")
		}

		e.stopAgent()
		r := netlink.NewRule()
		r.Priority, r.Table, r.Src = 10001, 10001, mustIPNet("10.99.1.10/32")
		must(t, e.nl.RuleDel(r))
		doc, code := e.status()
		if code != 3 || doc.OK || doc.Daemon.Running {
			t.Errorf("drifted host: exit %d, ok %v, daemon running %v; want 3, false, false", code, doc.OK, doc.Daemon.Running)
		}
		if got := doc.item("ens6", "rule", "10001: from 10.99.1.10 lookup 10001"); got != "missing" {
			t.Errorf("deleted rule: %s, want missing", got)
		}
		if got := doc.item("ens6", "rule", "10001: from 10.99.1.20 lookup 10001"); got != "ok" {
			t.Errorf("the other rule: %s, want ok", got)
		}

		// A restarted daemon is seen again. (Whether its first pass restores a rule deleted while it
		// was stopped is the daemon's business, not status's: with networkd and NetworkManager it
		// does not today, since their files are unchanged and rules are restored on deletion
		// events only.)
		e.startAgent()
		e.waitFor("status sees the daemon again", func() (bool, error) {
			doc, _ := e.status()
			return doc.Daemon.Running, nil
		})
	})
}

// exitStderr is what a command that failed printed on stderr.
func exitStderr(ee *exec.ExitError) string {
	if ee == nil {
		return ""
	}
	return string(ee.Stderr)
}
