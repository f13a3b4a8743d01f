package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
)

// TestIfcfgAttachDetachCyclesLeaveNothingBehind: dhclient does not exit when its link goes away,
// so every detach is the agent's to clean up. After 20 attach/detach cycles of one ENI there is
// no dhclient, lease, pid file, rule, table route or generated file of it left, and each attach
// started exactly one dhclient.
func TestIfcfgAttachDetachCyclesLeaveNothingBehind(t *testing.T) {
	bc := backendCases[slices.IndexFunc(backendCases, func(b backendCase) bool { return b.name == "ifcfg" })]
	e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), secondENI(), thirdENI()}})
	e.addForeignRules()
	e.startAgent()
	e.waitRule(ens6Rule10, true)
	starts := e.reloads.N()

	const cycles = 20
	for i := range cycles {
		must(t, e.l.Attach("ens7"))
		e.waitRule(ens7Rule, true)
		e.waitForAddress("ens7", "10.99.2.10/24")
		if i == 0 {
			e.mustPing("10.99.2.10")
		}
		must(t, e.l.Detach("ens7"))
		e.waitFor(fmt.Sprintf("cycle %d: nothing of ens7 left", i+1), func() (bool, error) {
			return len(e.ifcfgLeftovers("ens7", 10002)) == 0, nil
		})
	}
	if left := e.ifcfgLeftovers("ens7", 10002); len(left) > 0 {
		t.Errorf("after %d cycles: %s", cycles, strings.Join(left, "; "))
	}
	if got := e.reloads.N() - starts; got != cycles {
		t.Errorf("%d dhclient starts in %d attaches, want one each", got, cycles)
	}
	// ens6 lived through all of it.
	if n := len(e.dhclients("ens6")); n != 1 {
		t.Errorf("%d dhclients for ens6, want 1", n)
	}
	e.mustPing("10.99.1.10")
	e.assertForeignRulesIntact()
}

// ifcfgLeftovers lists what remains of an interface the ifcfg backend configured with table.
func (e *env) ifcfgLeftovers(iface string, table int) []string {
	var left []string
	if pids := e.dhclients(iface); len(pids) > 0 {
		left = append(left, fmt.Sprintf("dhclient %v", pids))
	}
	for _, p := range []string{"/run/dhclient-" + iface + ".pid", "/run/dhclient6-" + iface + ".pid",
		"/var/lib/dhcp/dhclient--" + iface + ".lease", "/var/lib/dhcp/dhclient6--" + iface + ".lease",
		"/etc/dhcp/dhclient-" + iface + ".conf", "/run/ec2-net-utils/ifcfg/" + iface + ".json"} {
		if _, err := os.Stat(e.l.InstancePath(p)); err == nil {
			left = append(left, p)
		}
	}
	if files := e.filesOf(iface); len(files) > 0 {
		left = append(left, fmt.Sprintf("files %v", files))
	}
	for _, r := range e.rules() {
		if r.Priority == table || r.Table == table {
			left = append(left, "rule "+r.String())
		}
	}
	if rs := e.routes(table); len(rs) > 0 {
		left = append(left, fmt.Sprintf("table %d: %v", table, rs))
	}
	return left
}

// dhclients are the PIDs of the dhclients for iface in the instance's network namespace.
func (e *env) dhclients(iface string) []int {
	e.t.Helper()
	var inst syscall.Stat_t
	must(e.t, syscall.Stat("/run/netns/"+e.l.Namespaces()[1], &inst))
	entries, err := os.ReadDir("/proc")
	must(e.t, err)
	var pids []int
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) != "dhclient" || args[len(args)-1] != iface {
			continue
		}
		var ns syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", d.Name(), "ns", "net"), &ns) == nil && ns.Ino == inst.Ino {
			pids = append(pids, pid)
		}
	}
	return pids
}

// onePointXIfcfg is ens6's ifcfg file as amazon-ec2-net-utils 1.x left it, with a knob set.
func onePointXIfcfg(knob string) string {
	return "DEVICE=ens6\nBOOTPROTO=dhcp\nONBOOT=yes\nTYPE=Ethernet\nUSERCTL=yes\nPEERDNS=no\nIPV6INIT=yes\n" +
		"DHCPV6C=yes\nDHCPV6C_OPTIONS=-nw\nPERSISTENT_DHCLIENT=yes\nHWADDR=02:00:00:00:06:06\nDEFROUTE=no\nEC2SYNC=yes\n" + knob + "\n"
}

// TestIfcfgMainRouteTableNoKeepsTheENIOutOfMain: with MAINROUTETABLE=no in the ifcfg file 1.x
// left behind, the agent's dhclient gives ens6 its address but no default route in main, traffic
// from its addresses still leaves through it (source rules), and the file is not rewritten.
func TestIfcfgMainRouteTableNoKeepsTheENIOutOfMain(t *testing.T) {
	e := newEnv(t, backendNamed(t, "ifcfg"), envOptions{})
	const path = "/etc/sysconfig/network-scripts/ifcfg-ens6"
	must(t, e.l.WriteInstanceFile(path, onePointXIfcfg("MAINROUTETABLE=no"), 0o644))
	e.startAgent()
	e.waitRule(ens6Rule20, true)
	e.waitForAddress("ens6", "10.99.1.20/32")
	if slices.Contains(e.routes(254), "default via 10.99.1.1 dev ens6") {
		t.Errorf("main has ens6's default route despite MAINROUTETABLE=no: %v", e.routes(254))
	}
	e.mustPing("10.99.1.10")
	e.mustPing("10.99.1.20")
	got, err := e.l.ReadInstanceFile(path)
	must(t, err)
	if got != onePointXIfcfg("MAINROUTETABLE=no") {
		t.Errorf("the administrator's ifcfg-ens6 was rewritten:\n%s", got)
	}
	route, err := e.l.ReadInstanceFile("/etc/sysconfig/network-scripts/route-ens6")
	must(t, err)
	if strings.Contains(route, "metric") {
		t.Errorf("route-ens6 has a main-table default route:\n%s", route)
	}
}

// TestIfcfgEC2SyncNoLeavesTheENIAlone: with EC2SYNC=no the agent starts no dhclient for ens6 and
// adds no rule, route, address or file, also not when refreshes and rule restores come by.
func TestIfcfgEC2SyncNoLeavesTheENIAlone(t *testing.T) {
	e := newEnv(t, backendNamed(t, "ifcfg"), envOptions{})
	must(t, e.l.WriteInstanceFile("/etc/sysconfig/network-scripts/ifcfg-ens6", onePointXIfcfg("EC2SYNC=no"), 0o644))
	// Not startAgent: that waits for ens6's lease, which must never come.
	e.startDaemon()
	e.waitForAddress("ens5", "10.99.0.20/32") // the primary ENI is configured
	e.waitFor("two refreshes", func() (bool, error) { return strings.Count(e.agent.Log(), "reason=refresh") >= 2, nil })
	if left := e.ifcfgLeftovers("ens6", 10001); len(left) > 1 || len(left) == 1 && !strings.Contains(left[0], "files [ifcfg-ens6]") {
		t.Errorf("the agent touched ens6: %s", strings.Join(left, "; "))
	}
	if got := e.addresses("ens6"); len(got) != 0 {
		t.Errorf("ens6 has addresses %v", got)
	}
}
