package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/ec2-net-utils/ec2-net-utils/internal/netnsx"
)

const netnsDir = "/run/netns"

// sysctl writes a /proc/sys/net value inside ns (these files are per network namespace).
func sysctl(ns netns.NsHandle, key, value string) error {
	return netnsx.Do(ns, func() error {
		p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("lab: sysctl %s=%s: %w", key, value, err)
		}
		return nil
	})
}

// run runs a short host-side helper command (ip, nft) and returns its combined output in errors.
func run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *Lab) createNamespaces(ctx context.Context) error {
	for _, n := range []struct {
		name string
		h    *netns.NsHandle
	}{{l.vpcNS, &l.vpc}, {l.instNS, &l.inst}, {l.poolNS, &l.pool}} {
		if _, err := os.Stat(filepath.Join(netnsDir, n.name)); err == nil {
			return fmt.Errorf("lab: netns %s already exists", n.name)
		}
		if err := run(ctx, "ip", "netns", "add", n.name); err != nil {
			return err
		}
		h, err := netns.GetFromName(n.name)
		if err != nil {
			return fmt.Errorf("lab: open netns %s: %w", n.name, err)
		}
		*n.h = h
	}
	return nil
}

// nsInode identifies a named network namespace the way /proc/PID/ns/net does.
func nsInode(name string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, name), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// pidsInNetns is `ip netns pids NAME`, minus this process: a goroutine of ours may be visiting
// the namespace on the main thread, and we must never signal ourselves.
func pidsInNetns(name string) ([]int, error) {
	ino, err := nsInode(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("lab: netns %s: %w", name, err)
	}
	return pidsInNetnsInode(ino)
}

// pidsInNetnsInode lists the processes (other than this one) whose network namespace has inode
// ino. Tests use it to prove Close left nothing behind.
func pidsInNetnsInode(ino uint64) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	want := fmt.Sprintf("net:[%d]", ino)
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNamespace signals whatever still runs in the namespace (all of it was started by the lab):
// SIGTERM, up to 1 s of grace, then SIGKILL.
func killNamespace(name string) error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		pids, err := pidsInNetns(name)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig)
		}
		for range 40 {
			time.Sleep(25 * time.Millisecond)
			if pids, _ := pidsInNetns(name); len(pids) == 0 {
				return nil
			}
		}
	}
	pids, _ := pidsInNetns(name)
	if len(pids) > 0 {
		return fmt.Errorf("lab: processes %v survive SIGKILL in netns %s", pids, name)
	}
	return nil
}

func deleteNamespace(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("lab: delete netns %s: %w", name, err)
	}
	return nil
}

// The owner file lets Sweep tell a leftover lab from one another test binary is still using.
const ownerFile = "owner"

func (l *Lab) writeOwner() error {
	start, err := procStartTime(os.Getpid())
	if err != nil {
		return err
	}
	rec := fmt.Sprintf("%d %d\n", os.Getpid(), start)
	if err := os.WriteFile(filepath.Join(l.dir, ownerFile), []byte(rec), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if l.tmpLink != "" {
		if err := os.Symlink(l.dir, l.tmpLink); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	return nil
}

// procStartTime is field 22 of /proc/PID/stat, which tells a live owner from a reused PID.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("lab: %w", err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may contain spaces
	if i < 0 {
		return 0, fmt.Errorf("lab: malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("lab: malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// ownerAlive reports whether the process recorded in dir/owner still runs.
func ownerAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err != nil {
		return false
	}
	now, err := procStartTime(pid)
	return err == nil && now == start
}

// Sweep removes what crashed labs left behind: namespaces named <prefix>*-{vpc,inst,pool} and
// directories os.TempDir()/<prefix>*, unless the process that created the lab is still running
// (another test binary may be using it). Call it from TestMain with the package's lab Name.
func Sweep(prefix string) error {
	if len(prefix) < 2 {
		return fmt.Errorf("lab: sweep prefix %q too short", prefix)
	}
	ids := map[string]bool{}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lab: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, suf := range []string{"-vpc", "-inst", "-pool"} {
			if id, ok := strings.CutSuffix(name, suf); ok {
				ids[id] = true
			}
		}
	}
	tmp, err := os.ReadDir(os.TempDir())
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	for _, e := range tmp {
		if strings.HasPrefix(e.Name(), prefix) {
			ids[e.Name()] = true
		}
	}
	var errs []error
	for id := range ids {
		path := filepath.Join(os.TempDir(), id)
		if ownerAlive(path) {
			continue
		}
		for _, suf := range []string{"-vpc", "-inst", "-pool"} {
			if err := killNamespace(id + suf); err != nil {
				errs = append(errs, err)
			}
			if err := deleteNamespace(id + suf); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, removeLabDir(path))
	}
	return errors.Join(errs...)
}

// Leftovers lists the namespaces named <prefix>* whose lab belongs to this process or to no
// living process: after a test binary closed all its labs, any of them is a leak. Labs of other
// running test binaries are not counted.
func Leftovers(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab: %w", err)
	}
	self := strconv.Itoa(os.Getpid()) + " "
	var left []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		id := name
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			id = name[:i] // <id>-vpc, <id>-inst, <id>-pool
		}
		dir := filepath.Join(os.TempDir(), id)
		owner, _ := os.ReadFile(filepath.Join(dir, ownerFile))
		if ownerAlive(dir) && !strings.HasPrefix(string(owner), self) {
			continue // another test binary's lab, still in use
		}
		left = append(left, name)
	}
	return left, nil
}

// removeLabDir removes a lab directory, or the symlink to it plus its target. A directory without
// an owner file was not made by New and is left alone.
func removeLabDir(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	target := path
	if fi.Mode()&os.ModeSymlink != 0 {
		if target, err = os.Readlink(path); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(target, ownerFile)); err != nil {
		return nil
	}
	if err := os.RemoveAll(target); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}
