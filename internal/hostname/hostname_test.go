package hostname

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/internal/dbustest"
)

type fakeIMDS struct {
	name  string
	err   error
	calls int
}

func (f *fakeIMDS) LocalHostname(context.Context) (string, error) {
	f.calls++
	return f.name, f.err
}

// fakeSetter stands in for hostnamed, so no test changes this machine's host name.
type fakeSetter struct{ set []string }

func (f *fakeSetter) SetHostname(_ context.Context, name string) error {
	f.set = append(f.set, name)
	return nil
}

func TestHostNameFromIMDSOnlyWhenTheHostHasNone(t *testing.T) {
	const ec2 = "ip-10-0-1-5.us-west-2.compute.internal"
	for _, tc := range []struct {
		name     string
		static   *string // nil: no /etc/hostname
		imds     string
		imdsErr  error
		want     string // host name set; "" for none
		askIMDS  bool
		wantErr  string
		inReason string
	}{
		{name: "no /etc/hostname", imds: ec2, want: ec2, askIMDS: true, inReason: "no static host name"},
		{name: "empty /etc/hostname", static: ptr(""), imds: ec2, want: ec2, askIMDS: true},
		{name: "comments only", static: ptr("# set by the image\n\n"), imds: ec2, want: ec2, askIMDS: true},
		{name: "localhost", static: ptr("localhost\n"), imds: ec2, want: ec2, askIMDS: true, inReason: `"localhost" is a placeholder`},
		{name: "localhost.localdomain", static: ptr("localhost.localdomain\n"), imds: ec2, want: ec2, askIMDS: true},
		{name: "a name of its own wins", static: ptr("# mine\nweb-1\n"), imds: ec2, inReason: `sets "web-1"`},
		{name: "trailing dot and newline", imds: "ip-10-0-1-5.ec2.internal.\n", want: "ip-10-0-1-5.ec2.internal", askIMDS: true},
		{name: "too long for the kernel: first label", imds: "i-0123456789abcdef0." + strings.Repeat("a", 50) + ".compute.internal", want: "i-0123456789abcdef0", askIMDS: true},
		{name: "not a host name", imds: "bad name;rm", askIMDS: true, wantErr: "not a valid host name"},
		{name: "IMDS fails", imdsErr: errors.New("timeout"), askIMDS: true, wantErr: "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			static := filepath.Join(t.TempDir(), "hostname")
			if tc.static != nil {
				if err := os.WriteFile(static, []byte(*tc.static), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			src := &fakeIMDS{name: tc.imds, err: tc.imdsErr}
			set := &fakeSetter{}
			res, err := Apply(context.Background(), static, src, set)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if (src.calls > 0) != tc.askIMDS {
				t.Errorf("asked IMDS %d times, want asked = %v", src.calls, tc.askIMDS)
			}
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if strings.Join(set.set, ",") != strings.Join(want, ",") || res.Set != tc.want {
				t.Errorf("set %q (result %q), want %q", set.set, res.Set, want)
			}
			if !strings.Contains(res.Reason, tc.inReason) {
				t.Errorf("reason %q does not say %q", res.Reason, tc.inReason)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// hostname1 records the calls hostnamectl would make to systemd-hostnamed.
type hostname1 struct{ calls []string }

func (h *hostname1) SetStaticHostname(name string, interactive bool) *dbus.Error {
	h.calls = append(h.calls, "static "+name)
	return nil
}

func (h *hostname1) SetHostname(name string, interactive bool) *dbus.Error {
	h.calls = append(h.calls, "transient "+name)
	return nil
}

func TestHostnamedSetsTheStaticAndTheCurrentName(t *testing.T) {
	addr := dbustest.Start(t)
	server := dbustest.Connect(t, addr)
	h := &hostname1{}
	if err := server.Export(h, hostnamedPath, hostnamedName); err != nil {
		t.Fatal(err)
	}
	dbustest.Own(t, server, hostnamedName)
	if err := (Hostnamed{Conn: dbustest.Connect(t, addr)}).SetHostname(context.Background(), "ip-10-0-1-5.ec2.internal"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.calls, "|"); got != "static ip-10-0-1-5.ec2.internal|transient ip-10-0-1-5.ec2.internal" {
		t.Fatalf("hostnamed got %q", got)
	}
}
