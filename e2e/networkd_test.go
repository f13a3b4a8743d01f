package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
)

// A user's (or netplan's) .network that sorts before ours wins the link, and networkd ignores
// drop-ins of any other file (amazon-ec2-net-utils #146). The agent asks networkd which file is
// active and puts its drop-ins next to that one.
func TestNetworkdDropInsFollowTheFileNetworkdActuallyUses(t *testing.T) {
	const userFile = "/etc/systemd/network/10-user-ens6.network"
	e := newEnv(t, backendNamed(t, "networkd"), envOptions{beforeManager: func(l *lab.Lab) error {
		return l.WriteInstanceFile(userFile, "# a user's own configuration for ens6\n[Match]\nName=ens6\n\n[Network]\nDHCP=ipv4\n", 0o644)
	}})
	e.addForeignRules()
	e.startAgent()
	e.waitRule(ens6Rule10, true)
	e.waitRule(ens6Rule20, true)
	e.waitForAddress("ens6", "10.99.1.20/32")
	e.mustPing("10.99.1.20")

	files := keys(e.files())
	if !slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, "10-user-ens6.network.d/") }) {
		t.Errorf("no drop-ins next to the active %s: %v", userFile, files)
	}
	if slices.Contains(files, "70-ens6.network") {
		t.Errorf("70-ens6.network written although networkd uses the user's file: %v", files)
	}
	if got, err := e.l.ReadInstanceFile(userFile); err != nil || !strings.HasPrefix(got, "# a user's own") {
		t.Errorf("the user's file was changed: %q, %v", got, err)
	}
	e.assertForeignRulesIntact()
}

// An ENI detached and attached again under another name (udev renames it) is configured under
// the new name, and nothing of the old name is left to capture it (amazon-ec2-net-utils #166).
func TestNetworkdReattachedUnderANewNameIsConfiguredOnlyUnderIt(t *testing.T) {
	e := newEnv(t, backendNamed(t, "networkd"), envOptions{})
	e.startAgent()
	e.waitRule(ens6Rule10, true)
	must(t, e.l.Detach("ens6"))
	e.waitFor("ens6's files removed", func() (bool, error) { return len(e.filesOf("ens6")) == 0, nil })

	must(t, e.l.Attach("ens6"))
	link, err := e.nl.LinkByName("ens6")
	must(t, err)
	must(t, e.nl.LinkSetDown(link)) // a link must be down to be renamed, as udev does it
	must(t, e.nl.LinkSetName(link, "ens8"))
	e.waitFor("ens8 configured", func() (bool, error) {
		return slices.Contains(e.filesOf("ens8"), "70-ens8.network"), nil
	})
	e.waitRule(ens6Rule10, true)
	e.waitForAddress("ens8", "10.99.1.20/32")
	e.mustPing("10.99.1.20")
	if old := e.filesOf("ens6"); len(old) != 0 {
		t.Errorf("files of the old name left behind: %v", old)
	}
}
