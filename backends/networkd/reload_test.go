package networkd

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ec2-net-utils/ec2-net-utils/internal/dbusname"
)

// privateBus starts a dbus-daemon of our own (no root needed) and returns its address.
func privateBus(t *testing.T) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("needs dbus-daemon: ", err)
	}
	// The distribution's session policy lets anyone own any name, which is all the fake needs.
	cmd := exec.Command(daemon, "--session", "--address=unix:path="+filepath.Join(t.TempDir(), "bus"),
		"--nofork", "--nopidfile", "--print-address")
	// Dies with the test binary even when a timeout panics past t.Cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v", err)
	}
	return strings.TrimSpace(addr)
}

func connect(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// fakeManager stands in for networkd's org.freedesktop.network1.Manager.
type fakeManager struct {
	reloads atomic.Int32
	block   chan struct{} // when non-nil, Reload waits for it to close
}

func (m *fakeManager) Reload() *dbus.Error {
	if m.block != nil {
		<-m.block
	}
	m.reloads.Add(1)
	return nil
}

func claimNetworkd(t *testing.T, addr string, m *fakeManager) {
	t.Helper()
	conn := connect(t, addr)
	if err := conn.Export(m, objectPath, managerInterface); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(busName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName = %v, %v", reply, err)
	}
}

func TestRunningAndReloadOverDBus(t *testing.T) {
	addr := privateBus(t)
	agent := connect(t, addr)
	ctx := context.Background()

	if running, err := dbusname.HasOwner(ctx, agent, busName); err != nil || running {
		t.Fatalf("Running before networkd owns its name = %v, %v; want false", running, err)
	}
	if err := NewDBusReloader(agent).Reload(ctx); err == nil {
		t.Error("Reload succeeded with no networkd on the bus")
	}

	m := &fakeManager{}
	claimNetworkd(t, addr, m)
	if running, err := dbusname.HasOwner(ctx, agent, busName); err != nil || !running {
		t.Fatalf("Running = %v, %v; want true", running, err)
	}
	if err := NewDBusReloader(agent).Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if n := m.reloads.Load(); n != 1 {
		t.Errorf("networkd saw %d Reload calls, want 1", n)
	}
}

func TestReloadIsBoundedByContext(t *testing.T) {
	addr := privateBus(t)
	m := &fakeManager{block: make(chan struct{})}
	claimNetworkd(t, addr, m)
	t.Cleanup(func() { close(m.block) })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := NewDBusReloader(connect(t, addr)).Reload(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Reload of a hung networkd = %v, want context.DeadlineExceeded", err)
	}
}
