package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// compatRun runs the compatibility script under name (as the /usr/sbin link does) with stand-ins
// for systemctl and the agent that log their arguments; daemonActive is what
// `systemctl is-active ec2-net-utils.service` answers.
func compatRun(t *testing.T, ifdownDir string, daemonActive bool, name string, args ...string) (calls []string, code int) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	active := "exit 3"
	if daemonActive {
		active = "exit 0"
	}
	stub := func(file, body string) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho \""+file+" $*\" >>"+log+"\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	systemctl := stub("systemctl", `[ "$1 $2" = "-q is-active" ] && `+active+`; exit 0`)
	agent := stub("ec2-net-utils", "exit 0")
	script, err := filepath.Abs("libexec/compat")
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, name)
	if err := os.Symlink(script, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, args...)
	cmd.Env = append(os.Environ(), "EC2NET_COMPAT_IFDOWN_DIR="+ifdownDir, "EC2NET_COMPAT_SYSTEMCTL="+systemctl, "EC2NET_COMPAT_AGENT="+agent)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" && !strings.Contains(l, "is-active") {
			calls = append(calls, l)
		}
	}
	t.Logf("%s %v: exit %d, calls %q, output %s", name, args, code, calls, out)
	return calls, code
}

func TestCompatibilityCommands(t *testing.T) {
	restart := []string{"systemctl restart ec2-net-utils.service"}
	apply := []string{"ec2-net-utils apply"}
	for _, tc := range []struct {
		name         string
		cmd          []string
		daemon       bool
		before, want []string // ifdown markers
		calls        []string
		code         int
	}{
		{"ec2ifdown leaves the interface alone and restarts the daemon", []string{"ec2ifdown", "eth1"}, true, nil, []string{"eth1"}, restart, 0},
		{"ec2ifdown without the daemon applies once", []string{"ec2ifdown", "eth1"}, false, []string{"eth2"}, []string{"eth1", "eth2"}, apply, 0},
		{"ec2ifup manages the interface again", []string{"ec2ifup", "eth1"}, true, []string{"eth1", "eth2"}, []string{"eth2"}, restart, 0},
		{"ec2ifscan reconciles", []string{"ec2ifscan"}, false, nil, nil, apply, 0},
		{"policy-routes@ reconciles through the daemon", []string{"compat", "reconcile", "eth1"}, true, nil, nil, restart, 0},
		{"refresh-policy-routes@ leaves refreshing to the daemon", []string{"compat", "refresh", "eth1"}, true, nil, nil, nil, 0},
		{"refresh-policy-routes@ without the daemon applies once", []string{"compat", "refresh", "eth1"}, false, nil, nil, apply, 0},
		{"ec2ifdown refuses a path", []string{"ec2ifdown", "../etc"}, true, nil, nil, nil, 2},
		{"ec2ifup needs an interface", []string{"ec2ifup"}, true, nil, nil, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down := filepath.Join(t.TempDir(), "ifdown")
			for _, n := range tc.before {
				if err := os.MkdirAll(down, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(down, n), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			calls, code := compatRun(t, down, tc.daemon, tc.cmd[0], tc.cmd[1:]...)
			if code != tc.code || strings.Join(calls, "|") != strings.Join(tc.calls, "|") {
				t.Errorf("exit %d, calls %q; want %d, %q", code, calls, tc.code, tc.calls)
			}
			var got []string
			entries, _ := os.ReadDir(down)
			for _, e := range entries {
				got = append(got, e.Name())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("ifdown markers %q, want %q", got, tc.want)
			}
		})
	}
}

// The script and the agent agree on where ec2ifdown's markers live.
func TestCompatIfdownDirIsTheAgents(t *testing.T) {
	script, err := os.ReadFile("libexec/compat")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := os.ReadFile("../cmd/ec2-net-utils/ifdown.go")
	if err != nil {
		t.Fatal(err)
	}
	s := regexp.MustCompile(`ifdown_dir=\$\{EC2NET_COMPAT_IFDOWN_DIR:-(\S+)\}`).FindSubmatch(script)
	g := regexp.MustCompile(`const ifdownDir = "(\S+)"`).FindSubmatch(agent)
	if s == nil || g == nil || string(s[1]) != string(g[1]) {
		t.Fatalf("script %q, agent %q: want the same directory", s, g)
	}
}
