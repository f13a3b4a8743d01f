package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The ifcfg backend in the lab. The instance plays an Amazon Linux 2 host: initscripts brought up
// the primary ENI at boot (its dhclient with the distribution's dhclient-script, from the image's
// ifcfg file), and the agent runs a dhclient per secondary ENI with the project's script.
const (
	// IfcfgScript is the dhclient script the agent is configured with in the lab: a wrapper that
	// records every run of the repository's script in IfcfgScriptLog, then runs it.
	IfcfgScript = "/etc/ec2-net-utils/dhclient-script"
	// ifcfgScriptRepo is the repository's packaging/libexec/dhclient-script, installed as is.
	ifcfgScriptRepo = "/etc/ec2-net-utils/dhclient-script.repo"
	// IfcfgScriptLog has one line "<reason> <interface>" per run of the script. dhclient runs it
	// with PREINIT (PREINIT6) exactly once when it starts, so those lines count dhclient starts.
	IfcfgScriptLog = "/run/ec2-net-utils-lab/dhclient-script.log"
)

const ifcfgWrapper = `#!/bin/sh
# lab: record this run of the dhclient script, then run the repository's script.
mkdir -p ` + "/run/ec2-net-utils-lab" + `
echo "$reason $interface" >> ` + IfcfgScriptLog + `
exec ` + ifcfgScriptRepo + ` "$@"
`

// setupIfcfg installs the dhclient script, writes the primary ENI's ifcfg file as the image ships
// it, and starts the primary ENI's dhclient the way initscripts' ifup does. There is no manager.
func (l *Lab) setupIfcfg(repoRoot string) error {
	if err := l.checkPrivateLeaseDir(); err != nil {
		return err
	}
	script, err := os.ReadFile(filepath.Join(repoRoot, "packaging/libexec/dhclient-script"))
	if err != nil {
		return fmt.Errorf("lab: ifcfg dhclient script: %w", err)
	}
	if err := l.WriteInstanceFile(ifcfgScriptRepo, string(script), 0o755); err != nil {
		return err
	}
	if err := l.WriteInstanceFile(IfcfgScript, ifcfgWrapper, 0o755); err != nil {
		return err
	}
	primary, ok := l.attachedPrimary()
	if !ok {
		// No primary ENI attached: nothing for initscripts to bring up.
		return l.StartManager(ManagerNone)
	}
	// Amazon Linux 2's /etc/sysconfig/network-scripts/ifcfg-eth0, for the lab's primary ENI.
	ifcfg := strings.Join([]string{
		"DEVICE=" + primary, "BOOTPROTO=dhcp", "ONBOOT=yes", "TYPE=Ethernet", "USERCTL=yes", "PEERDNS=yes",
		"DHCPV6C=yes", "DHCPV6C_OPTIONS=-nw", "PERSISTENT_DHCLIENT=yes", `RES_OPTIONS="timeout:2 attempts:5"`,
		"DHCP_ARP_CHECK=no",
	}, "\n") + "\n"
	if err := l.WriteInstanceFile("/etc/sysconfig/network-scripts/ifcfg-"+primary, ifcfg, 0o644); err != nil {
		return err
	}
	// What `ifup <primary>` runs (initscripts' pid and lease file names, the distribution's
	// dhclient-script), in the foreground so the lab owns the process.
	if _, err := l.Start("dhclient-"+primary, "dhclient", "-4", "-d", "-q",
		"-lf", "/var/lib/dhcp/dhclient--"+primary+".lease", "-pf", "/run/dhclient-"+primary+".pid", primary); err != nil {
		return err
	}
	// DHCPV6C=yes: on a dual-stack subnet ifup also runs dhclient -6, once the link-local address
	// has left duplicate address detection (initscripts' ipv6_wait_tentative: dhclient -6 cannot
	// bind before). The kernel takes the RA.
	if l.attachedHasIPv6(primary) {
		if err := l.waitLinkLocal(primary); err != nil {
			return err
		}
		if _, err := l.Start("dhclient6-"+primary, "dhclient", "-6", "-d", "-q",
			"-lf", "/var/lib/dhcp/dhclient6--"+primary+".lease", "-pf", "/run/dhclient6-"+primary+".pid", primary); err != nil {
			return err
		}
	}
	return l.StartManager(ManagerNone)
}

// checkPrivateLeaseDir makes sure dhclient's lease files land in the lab: the agent keeps them in
// /var/lib/dhclient if that exists, else /var/lib/dhcp, and only /var/lib/dhcp is the lab's own.
func (l *Lab) checkPrivateLeaseDir() error {
	if _, err := os.Stat("/var/lib/dhclient"); err == nil {
		return fmt.Errorf("lab: this host has /var/lib/dhclient, which the instance shares: the ifcfg backend would keep its leases there")
	}
	private, err := os.Stat(filepath.Join(l.dir, dhcpDir))
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	seen, err := os.Stat(fmt.Sprintf("/proc/%d/root/var/lib/dhcp", l.Holder()))
	if err != nil || !os.SameFile(private, seen) {
		return fmt.Errorf("lab: the instance's /var/lib/dhcp is not the lab's private directory (is isc-dhcp-client installed?)")
	}
	return nil
}

// attachedPrimary is the name of the attached ENI whose MAC IMDS reports as the instance's.
func (l *Lab) attachedPrimary() (string, bool) {
	mac := strings.ToLower(l.imds.Scenario().MAC)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.enis {
		if e.attached && e.mac == mac {
			return e.spec.Name, true
		}
	}
	return "", false
}

// ifcfgAgentConfig is the [ifcfg] table of the agent's configuration in the lab.
const ifcfgAgentConfig = `
[ifcfg]
dhclient_script = "` + IfcfgScript + `"
# dnsmasq refuses a request that names server 255.255.255.255 (EC2's DHCP server accepts it).
broadcast_renewals = false
`

// countScriptStarts counts the dhclient starts recorded in IfcfgScriptLog.
func (l *Lab) countScriptStarts() int64 {
	b, err := os.ReadFile(l.InstancePath(IfcfgScriptLog))
	if err != nil {
		return 0
	}
	var n int64
	for line := range strings.SplitSeq(string(b), "\n") {
		if reason, _, _ := strings.Cut(line, " "); reason == "PREINIT" || reason == "PREINIT6" {
			n++
		}
	}
	return n
}
