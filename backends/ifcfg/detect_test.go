package ifcfg

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/internal/dbustest"
)

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		dir    string
		owned  []string
		noBus  bool
		want   bool
		reason string
	}{
		{name: "initscripts host", dir: dir, want: true, reason: "neither NetworkManager nor systemd-networkd runs"},
		{name: "no ifcfg directory", dir: filepath.Join(dir, "absent"), reason: "does not exist"},
		{name: "NetworkManager with ifcfg-rh", dir: dir, owned: []string{"org.freedesktop.NetworkManager"}, reason: "NetworkManager runs"},
		{name: "networkd", dir: dir, owned: []string{"org.freedesktop.network1"}, reason: "network1 runs"},
		{name: "no system bus", dir: dir, noBus: true, want: true, reason: "no system bus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.noBus {
				ok, why, err := Detect(context.Background(), nil, tc.dir)
				if err != nil || ok != tc.want || !strings.Contains(why, tc.reason) {
					t.Errorf("Detect = %v, %q, %v; want %v and a reason with %q", ok, why, err, tc.want, tc.reason)
				}
				return
			}
			addr := dbustest.Start(t)
			for _, name := range tc.owned {
				dbustest.Own(t, dbustest.Connect(t, addr), name)
			}
			ok, why, err := Detect(context.Background(), dbustest.Connect(t, addr), tc.dir)
			if err != nil || ok != tc.want || !strings.Contains(why, tc.reason) {
				t.Errorf("Detect = %v, %q, %v; want %v and a reason with %q", ok, why, err, tc.want, tc.reason)
			}
		})
	}
}
