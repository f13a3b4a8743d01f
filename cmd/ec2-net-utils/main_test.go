package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, cmd := range [][]string{{"--help"}, {"plan", "--help"}, {"apply", "--help"}, {"daemon", "--help"}, {"version", "--help"}} {
		code, out, _ := runCLI(t, cmd...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, output %q; want 0 and a usage text", cmd, code, out)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || out != "ec2-net-utils dev\n" {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestBadInputExitsTwoAndNamesTheProblem(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("backend = \"networkd\"\n[imds]\ntimeout = \"soon\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"bad value in the config file", []string{"plan", "--config", bad}, []string{bad, "imds.timeout", "soon"}},
		{"missing config file named explicitly", []string{"plan", "--config", filepath.Join(dir, "nope.conf")}, []string{"nope.conf"}},
		{"unknown backend on the command line", []string{"plan", "--config", filepath.Join(dir, "none"), "--backend", "wicked"}, []string{"backend", "wicked"}},
		{"unknown flag", []string{"plan", "--frobnicate"}, []string{"frobnicate"}},
		{"unknown flag of the root command", []string{"--frobnicate"}, []string{"frobnicate"}},
		{"flag without its value", []string{"plan", "--config"}, []string{"config"}},
		{"config is a device", []string{"plan", "--config", "/dev/zero"}, []string{"/dev/zero", "not a regular file"}},
		{"unknown command", []string{"frobnicate"}, []string{"frobnicate"}},
		{"extra argument to plan", []string{"plan", "extra"}, []string{"extra"}},
		{"extra argument to version", []string{"version", "extra"}, []string{"extra"}},
		{"extra argument to daemon", []string{"daemon", "extra"}, []string{"extra"}},
	}
	empty := filepath.Join(dir, "none")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %q", code, exitUsage, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not name %q", stderr, w)
				}
			}
		})
	}
}

// TestPlanJSONAgainstAFakeIMDS runs `plan --json` with --imds-endpoint pointing at a fake on
// loopback. The scenario's MACs exist on no local link, so every ENI is pending: the JSON
// contract is checked without touching (or depending on) the host's links.
func TestPlanJSONAgainstAFakeIMDS(t *testing.T) {
	sc, err := scenario.Load("../../testdata/scenarios/primary-and-secondary.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fakeimds.New(sc))
	defer srv.Close()
	conf := filepath.Join(t.TempDir(), "ec2-net-utils.conf")
	if err := os.WriteFile(conf, []byte("backend = \"networkd\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "plan", "--json", "--config", conf, "--imds-endpoint", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Backend    string            `json:"backend"`
		Interfaces []json.RawMessage `json:"interfaces"`
		Pending    []struct {
			MAC    string `json:"mac"`
			Reason string `json:"reason"`
		} `json:"pending"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan --json is not JSON: %v\n%s", err, out)
	}
	if doc.Backend != "networkd" || doc.Interfaces == nil || len(doc.Pending) != 2 {
		t.Errorf("backend %q, interfaces %v, pending %+v; want networkd, [], both ENIs pending", doc.Backend, doc.Interfaces, doc.Pending)
	}
	for _, p := range doc.Pending {
		if !strings.Contains(p.Reason, "no local link") {
			t.Errorf("pending %s: reason %q, want it to say there is no local link", p.MAC, p.Reason)
		}
	}
}

func TestPlanFailsWhenIMDSIsUnreachable(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close() // nothing listens there any more
	conf := filepath.Join(t.TempDir(), "ec2-net-utils.conf")
	if err := os.WriteFile(conf, []byte("backend = \"networkd\"\n[imds]\ntimeout = \"200ms\"\nmax_attempts = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "plan", "--config", conf, "--imds-endpoint", url)
	if code != exitFailure || !strings.Contains(stderr, "IMDS") {
		t.Errorf("exit %d, stderr %q; want %d and an error about IMDS", code, stderr, exitFailure)
	}
}

// ec2ifdown's markers join [interfaces] exclude, after the configuration's own entries.
func TestInterfacesTakenDownWithEc2ifdownAreExcluded(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "ec2-net-utils.conf")
	if err := os.WriteFile(conf, []byte("[interfaces]\nexclude = [\"eth3\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	down := filepath.Join(dir, "down")
	if err := os.Mkdir(down, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"eth2", "eth1"} {
		if err := os.WriteFile(filepath.Join(down, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{down, []string{"eth3", "eth1", "eth2"}},
		{filepath.Join(dir, "missing"), []string{"eth3"}},
	} {
		g := &globals{configPath: conf, ifdownDir: tc.dir}
		cfg, err := g.loadConfig()
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.PlanOptions().Exclude; !slices.Equal(got, tc.want) {
			t.Errorf("%s: exclude %q, want %q", tc.dir, got, tc.want)
		}
	}
}

// TestPlanWithAnOversizeIMDSValueFailsBriefly: a 100 MB value is neither read whole nor echoed.
func TestPlanWithAnOversizeIMDSValueFailsBriefly(t *testing.T) {
	sc, err := scenario.Load("../../testdata/scenarios/primary-and-secondary.json")
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeimds.New(sc)
	fake.Oversize("local-ipv4s", 100<<20)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	conf := filepath.Join(t.TempDir(), "ec2-net-utils.conf")
	if err := os.WriteFile(conf, []byte("backend = \"networkd\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "plan", "--config", conf, "--imds-endpoint", srv.URL)
	if code != exitFailure || !strings.Contains(stderr, "/local-ipv4s: ") || len(stderr)+len(out) > 1024 {
		t.Errorf("exit %d, %d bytes of output, stderr %.400q; want %d and a short error naming local-ipv4s", code, len(stderr)+len(out), stderr, exitFailure)
	}
}
