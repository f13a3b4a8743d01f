package ifcfg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// TestMain doubles as a fake dhclient: run through a symlink named "dhclient", the test binary
// behaves like `dhclient -nw`: it forks a daemon (itself again) that writes its pid file and
// waits for SIGTERM, and exits. The daemon's command line is "…/dhclient <args>", exactly what
// the backend looks for in procfs.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "dhclient" {
		os.Exit(fakeDHClient(os.Args[1:]))
	}
	os.Exit(m.Run())
}

const (
	fakeDaemonEnv = "IFCFG_TEST_FAKE_DHCLIENT_DAEMON"
	// fakeHoldOutputEnv makes the fake daemon keep the output the fake dhclient was started
	// with, as a real dhclient's script may: Start then reads from a pipe that stays open as long
	// as the daemon runs.
	fakeHoldOutputEnv = "IFCFG_TEST_FAKE_DHCLIENT_HOLD_OUTPUT"
)

func fakeDHClient(args []string) int {
	if os.Getenv(fakeDaemonEnv) == "" {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), fakeDaemonEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if os.Getenv(fakeHoldOutputEnv) != "" {
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	if i := slices.Index(args, "-pf"); i >= 0 && i+1 < len(args) {
		if err := os.WriteFile(args[i+1], []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return 1
		}
	}
	select {
	case <-sigs:
	case <-time.After(time.Minute): // never outlive the test run by much
	}
	return 0
}

// fakeDHClientFor returns a DHClient whose binary is the fake, with its files in a temp dir.
// Daemons still running at the end of the test are stopped (they are ours: started here).
func fakeDHClientFor(t *testing.T) *DHClient {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin", "dhclient")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "dhclient-script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := &DHClient{Binary: bin, Script: script, ConfDir: filepath.Join(dir, "dhcp"),
		PidDir: filepath.Join(dir, "run"), LeaseDir: filepath.Join(dir, "lib"), StopTimeout: 2 * time.Second}
	t.Cleanup(func() {
		for _, iface := range []string{"eni0", "eni1"} {
			for _, fam := range []core.Family{core.IPv4, core.IPv6} {
				if p, err := d.Find(iface, fam); err == nil && p.Pid > 0 {
					_ = d.Stop(p)
				}
			}
		}
	})
	return d
}

func waitFound(t *testing.T, d *DHClient, iface string, fam core.Family) Process {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := d.Find(iface, fam)
		if err != nil {
			t.Fatal(err)
		}
		if p.Pid > 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dhclient for %s -%d found", iface, fam)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPidFile returns the pid the fake daemon wrote to path; the daemon writes it once running.
func waitPidFile(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s: %v", path, err)
		}
	}
}

func TestDHClientStartFindStop(t *testing.T) {
	// The daemon holds Start's output pipe and exits only on SIGTERM (or after a minute), so a
	// Start that waited for the daemon, not only for the forking parent, would return with the
	// daemon gone.
	t.Setenv(fakeHoldOutputEnv, "1")
	d := fakeDHClientFor(t)
	spec := ClientSpec{Iface: "eni0", Family: core.IPv4, Metric: 513, MainDefault: true}
	if p, err := d.Find("eni0", core.IPv4); err != nil || p.Pid != 0 {
		t.Fatalf("Find before start = %+v, %v; want none", p, err)
	}
	if err := d.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if pid := waitPidFile(t, d.PidFile("eni0", core.IPv4)); syscall.Kill(pid, 0) != nil || isZombie("/proc", pid) {
		t.Fatalf("Start returned only after the daemon %d exited: it must return once dhclient forked", pid)
	}
	p := waitFound(t, d, "eni0", core.IPv4)
	if !p.Ours || !slices.Equal(p.Args, d.Args(spec)) {
		t.Errorf("found %+v, want ours with args %v", p, d.Args(spec))
	}
	if other, _ := d.Find("eni0", core.IPv6); other.Pid != 0 {
		t.Errorf("Find(-6) found the IPv4 client %d", other.Pid)
	}
	if other, _ := d.Find("eni1", core.IPv4); other.Pid != 0 {
		t.Errorf("Find(eni1) found eni0's client %d", other.Pid)
	}

	if err := d.Stop(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(p.Pid), "cmdline")); err == nil && !isZombie("/proc", p.Pid) {
		if args, ok := d.cmdline(p.Pid); ok && filepath.Base(args[0]) == "dhclient" {
			t.Errorf("dhclient %d still runs after Stop", p.Pid)
		}
	}
	if _, err := os.Stat(d.PidFile("eni0", core.IPv4)); !os.IsNotExist(err) {
		t.Errorf("pid file left after Stop: %v", err)
	}
	if p, _ := d.Find("eni0", core.IPv4); p.Pid != 0 {
		t.Errorf("Find after Stop = %d", p.Pid)
	}
}

func TestDHClientWithoutPidFileIsFoundInProcfs(t *testing.T) {
	d := fakeDHClientFor(t)
	spec := ClientSpec{Iface: "eni1", Family: core.IPv6, Metric: 514}
	if err := d.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	p := waitFound(t, d, "eni1", core.IPv6)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := os.Remove(d.PidFile("eni1", core.IPv6)); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the daemon wrote no pid file: %v", err)
		}
	}
	if again, err := d.Find("eni1", core.IPv6); err != nil || again.Pid != p.Pid {
		t.Errorf("Find without the pid file = %d, %v; want %d from procfs", again.Pid, err, p.Pid)
	}
}

func TestDHClientPidFileNamingAnotherProcessIsIgnored(t *testing.T) {
	d := fakeDHClientFor(t)
	if err := os.MkdirAll(d.PidDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A stale pid file whose PID now belongs to an unrelated process (this test).
	if err := os.WriteFile(d.PidFile("eni0", core.IPv4), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := d.Find("eni0", core.IPv4); err != nil || p.Pid != 0 {
		t.Errorf("Find = %+v, %v; want none", p, err)
	}
}

func TestDHClientArgs(t *testing.T) {
	d := &DHClient{Script: DefaultScript, ConfDir: "/etc/dhcp", PidDir: "/run", LeaseDir: "/var/lib/dhclient"}
	got := strings.Join(d.Args(ClientSpec{Iface: "eth1", Family: core.IPv4, Metric: 513, MainDefault: true, MTU: 9001}), " ")
	want := "-4 -nw -cf /etc/dhcp/dhclient-eth1.conf -lf /var/lib/dhclient/dhclient--eth1.lease -pf /run/dhclient-eth1.pid " +
		"-sf /usr/libexec/ec2-net-utils/dhclient-script -e EC2NET_METRIC=513 -e EC2NET_MAIN_DEFAULT=yes -e EC2NET_MTU=9001 eth1"
	if got != want {
		t.Errorf("Args =\n%s\nwant\n%s", got, want)
	}
	got6 := strings.Join(d.Args(ClientSpec{Iface: "eth1", Family: core.IPv6, Metric: 513}), " ")
	if !strings.HasPrefix(got6, "-6 -nw -lf /var/lib/dhclient/dhclient6--eth1.lease -pf /run/dhclient6-eth1.pid ") {
		t.Errorf("IPv6 Args = %s", got6)
	}
}

func TestDHClientStartFailureSaysWhy(t *testing.T) {
	d := &DHClient{Binary: "/nonexistent/dhclient", PidDir: t.TempDir(), LeaseDir: t.TempDir()}
	err := d.Start(context.Background(), ClientSpec{Iface: "eni0", Family: core.IPv4})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/dhclient") {
		t.Errorf("Start = %v, want an error naming the binary", err)
	}

	d = fakeDHClientFor(t)
	d.Script = "/nonexistent/dhclient-script"
	err = d.Start(context.Background(), ClientSpec{Iface: "eni0", Family: core.IPv4})
	if err == nil || !strings.Contains(err.Error(), "dhclient_script") {
		t.Errorf("Start with a missing script = %v, want an error naming the key", err)
	}
	if p, _ := d.Find("eni0", core.IPv4); p.Pid != 0 {
		t.Errorf("a dhclient was started with a missing script")
	}
}
