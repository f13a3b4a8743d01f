package main

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// labBackend is what the demo and the benchmark need to know about a backend.
type labBackend struct {
	// manager is what configures the ENIs in the instance besides the agent.
	manager string
	// dirs hold the agent's generated files in the instance; keep, when set, picks them out of
	// what else is there.
	dirs []string
	keep func(path string) bool
	// agentLeases: the agent, not a manager, gets the secondary ENIs their DHCP lease (it starts
	// their dhclient), so they have no address before the agent runs.
	agentLeases bool
	// detach says what detaching an ENI does not do, in the backend's words.
	detach string
}

var labBackends = map[string]labBackend{
	"networkd": {manager: "systemd-networkd", dirs: []string{"/run/systemd/network"},
		detach: "networkd is not reloaded"},
	"networkmanager": {manager: "NetworkManager", dirs: []string{"/run/NetworkManager/system-connections"},
		detach: "no other device is reactivated"},
	"ifcfg": {manager: "no network manager: initscripts' dhclient on the primary ENI, as on Amazon Linux 2",
		dirs: []string{"/etc/sysconfig/network-scripts", "/etc/dhcp"}, agentLeases: true,
		keep: func(p string) bool {
			name := path.Base(p)
			return path.Dir(p) == "/etc/sysconfig/network-scripts" ||
				path.Dir(p) == "/etc/dhcp" && strings.HasPrefix(name, "dhclient-") && strings.HasSuffix(name, ".conf")
		},
		detach: "its dhclient is stopped and no other dhclient is restarted"},
}

func backendNames() string {
	names := make([]string, 0, len(labBackends))
	for n := range labBackends {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func lookupBackend(name string) (labBackend, error) {
	b, ok := labBackends[name]
	if !ok {
		return labBackend{}, fmt.Errorf("unknown backend %q: want one of %s", name, backendNames())
	}
	return b, nil
}
