package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// The instance's private directories on the host, bind- or overlay-mounted by the holder.
const (
	etcUpper = "etc-upper"
	etcWork  = "etc-work"
	runDir   = "run"
	nmDir    = "var-lib-nm"
	dhcpDir  = "var-lib-dhcp"
)

// holderScript builds the instance's private mount + UTS namespace and then just exists: every
// other instance process joins its namespaces with nsenter. /sys must be read-only, or networkd
// and NetworkManager assume udev is running and wait for it forever.
const holderScript = `set -e
mount -t overlay overlay -o lowerdir=/etc,upperdir={{dir}}/etc-upper,workdir={{dir}}/etc-work /etc
mount --bind {{dir}}/run /run
if [ -d /var/lib/NetworkManager ]; then mount --bind {{dir}}/var-lib-nm /var/lib/NetworkManager; fi
if [ -d /var/lib/dhcp ]; then mount --bind {{dir}}/var-lib-dhcp /var/lib/dhcp; fi
mount -o remount,bind,ro /sys
hostname {{host}}
: > {{dir}}/holder.ready
exec sleep infinity
`

// busConfig is a system bus with the distro's default-deny policy and per-service policies
// (NetworkManager, network1, ...), but no service activation: nothing is ever spawned by the bus.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
</busconfig>
`

func (l *Lab) startHolder(ctx context.Context) error {
	// run/systemd exists on every systemd host; networkd creates netif/ in it but not it.
	for _, d := range []string{etcUpper, etcWork, runDir, nmDir, dhcpDir, "run/dbus", "run/systemd"} {
		if err := os.MkdirAll(filepath.Join(l.dir, d), 0o755); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	// Private copies in the overlay's upper dir: the instance may rewrite them freely, and its
	// own machine-id gives each lab distinct DHCP client identifiers.
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		resolv = nil
	}
	machineID := make([]byte, 16)
	if _, err := rand.Read(machineID); err != nil {
		return fmt.Errorf("lab: machine-id: %w", err)
	}
	for name, content := range map[string][]byte{
		"resolv.conf": resolv,
		"hostname":    []byte(l.hostname() + "\n"),
		"machine-id":  []byte(hex.EncodeToString(machineID) + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(l.dir, etcUpper, name), content, 0o644); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	script := strings.NewReplacer("{{dir}}", l.dir, "{{host}}", l.hostname()).Replace(holderScript)
	scriptPath := filepath.Join(l.dir, "holder.sh")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	// ip netns exec, unshare and sh all exec in place, so the PID we start is the holder's.
	p, err := l.spawn("holder", []string{"ip", "netns", "exec", l.instNS,
		"unshare", "-m", "-u", "--propagation", "private", "sh", scriptPath})
	if err != nil {
		return err
	}
	l.holder = p
	ready := filepath.Join(l.dir, "holder.ready")
	if err := l.WaitFor(ctx, "instance holder ready", 5*time.Second, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("holder exited: %s", p.tail())
		}
		_, err := os.Stat(ready)
		return err == nil, nil
	}); err != nil {
		return err
	}
	// Never let a broken holder make the host's namespaces look like the instance's.
	for _, ns := range []string{"net", "mnt", "uts"} {
		self, _ := os.Readlink("/proc/self/ns/" + ns)
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p.Pid(), ns))
		if err != nil || its == self {
			return fmt.Errorf("lab: holder %d is not in a private %s namespace", p.Pid(), ns)
		}
	}
	return nil
}

func (l *Lab) hostname() string { return l.id + "-inst" }

// startDBus runs the instance's system bus inside the holder's mount namespace; from the host it
// is BusAddress().
func (l *Lab) startDBus(ctx context.Context) error {
	conf := filepath.Join(l.dir, "dbus-system.conf")
	if err := os.WriteFile(conf, []byte(busConfig), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	p, err := l.spawn("dbus", l.nsenter("dbus-daemon", "--nofork", "--nopidfile", "--config-file="+conf))
	if err != nil {
		return err
	}
	l.dbus = p
	return l.WaitFor(ctx, "private D-Bus system bus", 5*time.Second, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("dbus-daemon exited: %s", p.tail())
		}
		conn, err := l.dialBus()
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	})
}

// dialBus opens a private connection to the instance's system bus.
func (l *Lab) dialBus() (*dbus.Conn, error) {
	conn, err := dbus.Dial(l.BusAddress())
	if err != nil {
		return nil, err
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Holder is the PID of the process that owns the instance's namespaces (for nsenter -t).
func (l *Lab) Holder() int { return l.holder.Pid() }

// nsenter enters the instance. The network namespace comes from its name under /run/netns, not
// from the holder's PID: should the holder die and its PID be reused by a host process, nothing
// started here could end up in the host's network namespace, where 169.254.169.254 is not ours.
// The mount and UTS namespaces can only come from the holder, so callers check it is alive.
func (l *Lab) nsenter(args ...string) []string {
	return append([]string{"nsenter", "--net=/run/netns/" + l.instNS, "-t", strconv.Itoa(l.Holder()), "-m", "-u", "--"}, args...)
}

var errHolderGone = errors.New("lab: the instance's holder process has exited; its namespaces are gone")

// Command prepares args to run inside the instance (its network, mount and UTS namespaces).
func (l *Lab) Command(ctx context.Context, args ...string) *exec.Cmd {
	a := l.nsenter(args...)
	cmd := exec.CommandContext(ctx, a[0], a[1:]...)
	if l.holder.exited() {
		cmd.Err = errHolderGone // Start and Run return it without running anything
	}
	return cmd
}

// instanceRel turns an absolute instance path into one relative to the holder's root.
func instanceRel(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("lab: instance path %q is not absolute", p)
	}
	rel := strings.TrimPrefix(path.Clean(p), "/")
	if rel == "" {
		return "", fmt.Errorf("lab: instance path %q is the root", p)
	}
	return rel, nil
}

// instanceRoot opens the instance's root directory. os.Root keeps every access inside it, so an
// absolute symlink in the instance (e.g. /var/run -> /run) fails instead of reaching the host.
func (l *Lab) instanceRoot() (*os.Root, error) {
	r, err := os.OpenRoot(fmt.Sprintf("/proc/%d/root", l.Holder()))
	if err != nil {
		return nil, fmt.Errorf("lab: instance root: %w", err)
	}
	return r, nil
}

// WriteInstanceFile writes a file as the instance sees it (an /etc file lands in the overlay's
// upper dir, a /run file in the private run dir), creating parent directories.
func (l *Lab) WriteInstanceFile(p, content string, mode fs.FileMode) error {
	rel, err := instanceRel(p)
	if err != nil {
		return err
	}
	root, err := l.instanceRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if dir := path.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("lab: instance mkdir %s: %w", path.Dir(p), err)
		}
	}
	if err := root.WriteFile(rel, []byte(content), mode); err != nil {
		return fmt.Errorf("lab: instance write %s: %w", p, err)
	}
	if err := root.Chmod(rel, mode); err != nil { // WriteFile keeps an existing file's mode
		return fmt.Errorf("lab: instance chmod %s: %w", p, err)
	}
	return nil
}

// ReadInstanceFile reads a file as the instance sees it.
func (l *Lab) ReadInstanceFile(p string) (string, error) {
	rel, err := instanceRel(p)
	if err != nil {
		return "", err
	}
	root, err := l.instanceRoot()
	if err != nil {
		return "", err
	}
	defer root.Close()
	b, err := root.ReadFile(rel)
	if err != nil {
		return "", fmt.Errorf("lab: instance read %s: %w", p, err)
	}
	return string(b), nil
}

// InstancePath maps an instance path to a host path for inspection: /run/... is the lab's private
// run dir; anything else goes through /proc/<holder>/root (valid while the lab runs; beware that
// absolute symlinks there resolve on the host — ReadInstanceFile does not have that problem).
func (l *Lab) InstancePath(p string) string {
	clean := path.Clean("/" + p)
	if rest, ok := strings.CutPrefix(clean, "/run"); ok && (rest == "" || rest[0] == '/') {
		return filepath.Join(l.dir, runDir, rest)
	}
	return fmt.Sprintf("/proc/%d/root%s", l.Holder(), clean)
}

// EtcUpperDir is the overlay's upper dir: exactly the files the instance created or changed in /etc.
func (l *Lab) EtcUpperDir() string { return filepath.Join(l.dir, etcUpper) }

// Process is a background process the lab started and will stop on Close.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // valid once done is closed
}

// Start runs args in the background inside the instance, with stdout and stderr appended to
// <Dir>/<name>.log. Close stops it if it is still running.
func (l *Lab) Start(name string, args ...string) (*Process, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("lab: start %s: no command", name)
	}
	if l.holder.exited() {
		return nil, fmt.Errorf("lab: start %s: %w", name, errHolderGone)
	}
	return l.spawn(name, l.nsenter(args...))
}

// spawn starts and tracks a process in its own process group (so terminal signals aimed at the
// test do not hit it, and it is ours to stop).
func (l *Lab) spawn(name string, args []string) (*Process, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("lab: invalid process name %q", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("lab: start %s: lab closed", name)
	}
	logPath := filepath.Join(l.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %s (%s): %w", name, strings.Join(args, " "), err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.procs = append(l.procs, p)
	l.logf("lab %s: started %s (pid %d)", l.id, name, p.Pid())
	return p, nil
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process if it still runs.
func (p *Process) Signal(sig os.Signal) error {
	if p.exited() {
		return fmt.Errorf("lab: %s (pid %d) already exited: %v", p.name, p.Pid(), p.err)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("lab: signal %s: %w", p.name, err)
	}
	return nil
}

// Stop sends SIGTERM, waits up to 5 s, then SIGKILL. It returns the exit error, except that dying
// of the SIGTERM it sent counts as a clean stop. Stopping an exited process returns its exit error.
func (p *Process) Stop() error {
	if p.exited() {
		return p.exitErr()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return nil
			}
		}
		return p.exitErr()
	case <-time.After(5 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("lab: %s (pid %d) ignored SIGTERM for 5s and was killed", p.name, p.Pid())
}

func (p *Process) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("lab: %s (pid %d): %w", p.name, p.Pid(), p.err)
	}
	return nil
}

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// tail is the end of the log, for error messages.
func (p *Process) tail() string {
	s := strings.TrimSpace(p.Log())
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
