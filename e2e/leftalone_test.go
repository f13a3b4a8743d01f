package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/backends/networkmanager"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
)

// handsOffProfile is a user's profile for ens6 tagged to keep the agent away from the ENI.
const handsOffProfile = `[connection]
id=hands-off ens6
uuid=5e1f0a0e-77d4-4c0b-8f4e-0000000e2e06
type=ethernet
autoconnect-priority=120
interface-name=ens6

[ipv4]
method=auto

[ipv6]
method=ignore

[user]
` + networkmanager.TagSkip + `=yes
`

// TestAnENILeftAloneGetsNothingFromTheAgent: an ENI the user keeps for themselves (a NetworkManager
// profile tagged skip, ifcfg's EC2SYNC=no, interfaces.exclude) gets no source rule, no table
// route, no secondary address, no altname and no file from any part of the agent: not at the
// start pass, not at full refreshes (which restore missing rules), not from `apply`. The ENI next
// to it is configured as usual.
func TestAnENILeftAloneGetsNothingFromTheAgent(t *testing.T) {
	for _, tc := range []struct {
		name, backend string
		// file is the user's configuration of ens6, written before the manager starts.
		file, content string
		interfaces    string
		// reported: `apply` reports ens6 left alone (an excluded ENI is not planned at all).
		reported bool
		// why is what `status` says ens6 is left alone for.
		why string
	}{
		{name: "networkmanager skip tag", backend: "networkmanager", reported: true, why: networkmanager.TagSkip + "=yes (hands-off ens6)",
			file: "/etc/NetworkManager/system-connections/hands-off-ens6.nmconnection", content: handsOffProfile},
		{name: "ifcfg EC2SYNC=no", backend: "ifcfg", reported: true, why: "EC2SYNC=no in /etc/sysconfig/network-scripts/ifcfg-ens6",
			file: "/etc/sysconfig/network-scripts/ifcfg-ens6", content: onePointXIfcfg("EC2SYNC=no")},
		{name: "networkd exclude", backend: "networkd", interfaces: `exclude = ["ens6"]`, why: "exclude"},
		{name: "networkmanager exclude", backend: "networkmanager", interfaces: `exclude = ["02:00:00:00:06:06"]`, why: "exclude"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			third := thirdENI()
			third.Attached = true
			e := newEnv(t, backendNamed(t, tc.backend), envOptions{
				enis:       []lab.ENISpec{primaryENI(), secondENI(), third},
				interfaces: tc.interfaces,
				beforeManager: func(l *lab.Lab) error {
					if tc.file == "" {
						return nil
					}
					return l.WriteInstanceFile(tc.file, tc.content, 0o600)
				},
			})
			// Every refresh is a full one: each restores missing rules.
			must(t, e.l.WriteInstanceFile("/etc/ec2-net-utils.conf",
				strings.Replace(e.config, "[daemon]\n", "[daemon]\nfull_refresh_every = 1\n", 1), 0o644))
			userFiles := e.filesOf("ens6")

			e.startDaemon()
			e.waitRule(ens7Rule, true)
			e.waitForAddress("ens7", "10.99.2.10/24")
			e.assertLeftAlone("start pass", userFiles)

			since := strings.Count(e.agent.Log(), "reason=refresh")
			e.waitFor("two more full refreshes", func() (bool, error) {
				return strings.Count(e.agent.Log(), "reason=refresh") >= since+2, nil
			})
			e.assertLeftAlone("full refreshes", userFiles)
			e.assertStatusLeftAlone("ens6", tc.why)
			e.stopAgent()

			rep := e.apply()
			if ir, ok := rep.Outcome("02:00:00:00:06:06"); ok != tc.reported || ok && ir.Outcome != core.LeftAlone {
				t.Errorf("apply reported ens6 as %+v (reported %v), want left alone %v", ir, ok, tc.reported)
			}
			if ir, _ := rep.Outcome("02:00:00:00:07:07"); ir.Outcome != core.Configured {
				t.Errorf("apply reported ens7 as %+v, want configured", ir)
			}
			e.assertLeftAlone("apply", userFiles)
			e.mustPing("10.99.2.10")
		})
	}
}

// assertLeftAlone checks that ens6 has nothing of the agent's while ens7, next to it, has
// everything. The test adds no foreign rules: any rule or route of ens6's slot is the agent's.
func (e *env) assertLeftAlone(after string, userFiles []string) {
	e.t.Helper()
	for _, r := range e.rules() {
		if r.Priority == 10001 || r.Table == 10001 {
			e.t.Errorf("after the %s: ens6 has the rule %s", after, r)
		}
	}
	if rs := e.routes(10001); len(rs) > 0 {
		e.t.Errorf("after the %s: table 10001 has %v", after, rs)
	}
	if slices.Contains(e.addresses("ens6"), "10.99.1.20/32") {
		e.t.Errorf("after the %s: ens6 got its secondary address: %v", after, e.addresses("ens6"))
	}
	if got := e.altnames("ens6"); len(got) > 0 {
		e.t.Errorf("after the %s: ens6 got altnames %v", after, got)
	}
	if got := e.filesOf("ens6"); !slices.Equal(got, userFiles) {
		e.t.Errorf("after the %s: ens6's files are %v, want the user's %v", after, got, userFiles)
	}
	if got, want := e.altnames("ens7"), []string{"eni-00000000000000002", core.DeviceNumberAltname(0, 2)}; !slices.Equal(got, want) {
		e.t.Errorf("after the %s: ens7 has altnames %v, want %v", after, got, want)
	}
	if !e.hasRule(ens7Rule) || !slices.Contains(e.routes(10002), "default via 10.99.2.1 dev ens7") {
		e.t.Errorf("after the %s: ens7 is not configured: rules %v, table 10002 %v", after, e.rules(), e.routes(10002))
	}
}

// apply runs `ec2-net-utils apply` in the instance and returns its report.
func (e *env) apply() core.Report {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.l.Command(ctx, agentBin, "apply", "--config", "/etc/ec2-net-utils.conf")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("ec2-net-utils apply: %v\n%s%s", err, out, stderr.String())
	}
	var rep core.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		e.t.Fatalf("ec2-net-utils apply printed no report (%v):\n%s", err, out)
	}
	return rep
}
