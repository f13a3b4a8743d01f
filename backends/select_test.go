package backends

import (
	"context"
	"strings"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/internal/dbustest"
)

func selectWith(t *testing.T, backend string, owned ...string) Selection {
	t.Helper()
	addr := dbustest.Start(t)
	for _, name := range owned {
		dbustest.Own(t, dbustest.Connect(t, addr), name)
	}
	cfg := conf.Defaults()
	cfg.Backend = backend
	sel := Select(context.Background(), Options{Config: cfg, Bus: dbustest.Connect(t, addr)})
	t.Cleanup(sel.Close)
	return sel
}

func TestAutoPicksNetworkdWhenItOwnsItsBusName(t *testing.T) {
	sel := selectWith(t, conf.BackendAuto, "org.freedesktop.network1")
	if sel.Err != nil || sel.Name() != "networkd" {
		t.Fatalf("selected %q (%v), want networkd", sel.Name(), sel.Err)
	}
	if !strings.Contains(sel.Reason, "org.freedesktop.network1") {
		t.Errorf("reason %q does not say why", sel.Reason)
	}
}

func TestAutoWithNoManagerNamesWhatItLookedFor(t *testing.T) {
	sel := selectWith(t, conf.BackendAuto)
	if sel.Backend != nil || sel.Err == nil {
		t.Fatalf("selected %q with no manager running", sel.Name())
	}
	for _, want := range []string{"org.freedesktop.network1", "backend"} {
		if !strings.Contains(sel.Err.Error(), want) {
			t.Errorf("error %q does not mention %q", sel.Err, want)
		}
	}
}

func TestExplicitBackendIsUsedWithoutDetection(t *testing.T) {
	sel := selectWith(t, conf.BackendNetworkd) // nothing owns network1: the user said networkd
	if sel.Err != nil || sel.Name() != "networkd" || !strings.Contains(sel.Reason, "configuration") {
		t.Fatalf("selected %q (%v, %q), want networkd from the configuration", sel.Name(), sel.Err, sel.Reason)
	}
}
