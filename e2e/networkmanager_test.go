package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
)

// cloudInitProfile is the profile cloud-init writes for an ENI on RHEL-family images.
const cloudInitProfile = `[connection]
id=cloud-init ens6
uuid=2d3c8f8e-5a1b-4c7e-9f00-c10d1417e006
type=ethernet
autoconnect-priority=120
interface-name=ens6

[ethernet]
mac-address=02:00:00:00:06:06

[ipv4]
method=auto

[ipv6]
method=ignore
`

const cloudInitPath = "/etc/NetworkManager/system-connections/cloud-init-ens6.nmconnection"

// An ENI that boots with a profile of the user's (cloud-init's) keeps it: the agent adds the
// routing to its applied connection with Reapply, writes no profile of its own for it, and leaves
// the profile on disk as it was.
func TestNetworkManagerKeepsAUsersProfileAndAddsTheRouting(t *testing.T) {
	e := newEnv(t, backendNamed(t, "networkmanager"), envOptions{beforeManager: func(l *lab.Lab) error {
		return l.WriteInstanceFile(cloudInitPath, cloudInitProfile, 0o600)
	}})
	e.addForeignRules()
	e.startAgent()
	e.waitRule(ens6Rule10, true)
	e.waitRule(ens6Rule20, true)
	e.waitForAddress("ens6", "10.99.1.20/32")
	e.waitFor("ens6's table routes", func() (bool, error) { return slices.Equal(e.routes(10001), ens6Table), nil })
	e.mustPing("10.99.1.20")
	e.mustPing("10.99.1.10")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.l.Command(ctx, "nmcli", "-g", "GENERAL.CONNECTION", "device", "show", "ens6").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "cloud-init ens6" {
		t.Errorf("ens6 runs %q (%v), want the user's profile", out, err)
	}
	if got := e.filesOf("ens6"); len(got) != 0 {
		t.Errorf("the agent wrote a profile of its own for ens6: %v", got)
	}
	if got, err := e.l.ReadInstanceFile(cloudInitPath); err != nil || got != cloudInitProfile {
		t.Errorf("the user's profile changed (%v):\n%s", err, got)
	}
	e.assertForeignRulesIntact()
}
