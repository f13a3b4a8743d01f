package backends

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
	"github.com/ec2-net-utils/ec2-net-utils/internal/dbustest"
)

func selectIfcfg(t *testing.T, backend, dir string, withNetlink bool) Selection {
	t.Helper()
	addr := dbustest.Start(t)
	cfg := conf.Defaults()
	cfg.Backend = backend
	cfg.Ifcfg.Dir = dir
	o := Options{Config: cfg, Bus: dbustest.Connect(t, addr)}
	if withNetlink {
		// Opening a netlink socket needs no privilege; the selection sends nothing on it.
		nl, err := netlink.NewHandle()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nl.Close)
		o.Netlink = netlinkx.New(nl)
	}
	sel := Select(context.Background(), o)
	t.Cleanup(sel.Close)
	return sel
}

func TestAutoPicksIfcfgOnAnInitscriptsHost(t *testing.T) {
	sel := selectIfcfg(t, conf.BackendAuto, t.TempDir(), true)
	if sel.Err != nil || sel.Name() != "ifcfg" || !strings.Contains(sel.Reason, "neither NetworkManager nor systemd-networkd") {
		t.Fatalf("selected %q (%v, %q), want ifcfg with the reason", sel.Name(), sel.Err, sel.Reason)
	}
}

func TestAutoWithoutIfcfgDirectoryDoesNotPickIfcfg(t *testing.T) {
	sel := selectIfcfg(t, conf.BackendAuto, filepath.Join(t.TempDir(), "absent"), true)
	if sel.Backend != nil || sel.Err == nil || !strings.Contains(sel.Err.Error(), "initscripts") {
		t.Fatalf("selected %q (%v), want no backend and an error saying initscripts was looked for", sel.Name(), sel.Err)
	}
}

func TestIfcfgNeedsTheAgentsNetlinkHandle(t *testing.T) {
	sel := selectIfcfg(t, conf.BackendIfcfg, t.TempDir(), false)
	if sel.Backend != nil || sel.Err == nil || !strings.Contains(sel.Err.Error(), "netlink") {
		t.Fatalf("selected %q (%v) without a netlink handle", sel.Name(), sel.Err)
	}
}
