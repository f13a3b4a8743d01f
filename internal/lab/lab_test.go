package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

const testPrefix = "labtest"

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := Sweep(testPrefix); err != nil {
			fmt.Fprintln(os.Stderr, "lab: sweep:", err)
		}
	}
	os.Exit(m.Run())
}

// logRecorder forwards lab logs to the test and keeps them, to learn which PIDs the lab started.
type logRecorder struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) logf(format string, args ...any) {
	r.t.Helper()
	line := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	r.t.Log(line)
}

var startedRE = regexp.MustCompile(`started (\S+) \(pid (\d+)\)`)

func (r *logRecorder) startedPIDs() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, l := range r.lines {
		if m := startedRE.FindStringSubmatch(l); m != nil {
			pid, _ := strconv.Atoi(m[2])
			out[m[1]+"#"+m[2]] = pid
		}
	}
	return out
}

// alive reports whether pid runs (a zombie has no namespaces left, so it counts as gone).
func alive(pid int) bool {
	_, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	return err == nil
}

// assertNothingLeft checks that no namespace, process or directory of the lab is left.
func assertNothingLeft(t *testing.T, id, dir string, pids map[string]int, inodes []uint64) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	if strings.Contains(string(out), id) {
		t.Errorf("namespaces of %s survive Close:\n%s", id, out)
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("process %s survives Close", name)
		}
	}
	for _, ino := range inodes {
		if left, err := pidsInNetnsInode(ino); err != nil || len(left) > 0 {
			t.Errorf("processes %v (err %v) still in a lab namespace", left, err)
		}
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir %s survives Close (err %v)", dir, err)
	}
}

const baseNetwork = `[Match]
Driver=veth

[Network]
DHCP=ipv4
KeepConfiguration=dhcp
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
UseMTU=yes
UseHostname=no
UseDNS=no
`

// The secondary ENI's DHCP routes must not replace the primary's main default route: give them
// a worse metric (the product does the same with per-ENI drop-ins).
const secondaryNetwork = `[Match]
Name=ens6

[Network]
DHCP=ipv4
KeepConfiguration=dhcp
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
UseMTU=yes
UseHostname=no
UseDNS=no
RouteMetric=2048
`

func hasAddr(t *testing.T, l *Lab, link, addr string) func() (bool, error) {
	return func() (bool, error) {
		h, err := l.InstanceNetlink()
		if err != nil {
			return false, err
		}
		defer h.Close()
		lk, err := h.LinkByName(link)
		if err != nil {
			return false, nil
		}
		addrs, err := h.AddrList(lk, netlink.FAMILY_V4)
		if err != nil {
			return false, err
		}
		for _, a := range addrs {
			if a.IP.String() == addr {
				return true, nil
			}
		}
		return false, nil
	}
}

func linkIn(l *Lab, h func() (*netlink.Handle, error), name string) bool {
	nh, err := h()
	if err != nil {
		return false
	}
	defer nh.Close()
	_, err = nh.LinkByName(name)
	return err == nil
}

// imdsGet fetches a metadata path from inside the instance with curl (IMDSv2 token first).
func imdsGet(t *testing.T, l *Lab, path string) string {
	t.Helper()
	return imdsGetAt(t, l, IMDSAddr, path)
}

func drops(t *testing.T, l *Lab, iface string) int {
	t.Helper()
	d, err := l.Drops()
	if err != nil {
		t.Fatal(err)
	}
	n, ok := d[iface]
	if !ok {
		t.Fatalf("no drop counter for %s in %v", iface, d)
	}
	return n
}

func TestLabWithNetworkd(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	ctx := context.Background()
	rec := &logRecorder{t: t}
	t0 := time.Now()
	l, err := New(ctx, Options{
		Name:     testPrefix,
		Scenario: &scenario.Scenario{InstanceID: "i-0123456789abcdef0"},
		Logf:     rec.logf,
		ENIs: []ENISpec{
			{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", Attached: true},
			{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1, PrivateIPs: []string{"10.99.1.10", "10.99.1.20"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = l.Close()
		}
	})
	t.Logf("timing: lab up %v", time.Since(t0).Round(time.Millisecond))

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.WriteInstanceFile("/etc/systemd/network/80-ec2.network", baseNetwork, 0o644))
	must(l.WriteInstanceFile("/etc/systemd/network/70-ens6.network", secondaryNetwork, 0o644))
	must(l.WriteInstanceFile("/etc/systemd/networkd.conf.d/50-lab.conf", "[Network]\nManageForeignRoutingPolicyRules=no\n", 0o644))
	if b, err := os.ReadFile(l.EtcUpperDir() + "/systemd/network/80-ec2.network"); err != nil || string(b) != baseNetwork {
		t.Fatalf("80-ec2.network did not land in the overlay's upper dir: %v", err)
	}
	if _, err := os.Stat("/etc/systemd/network/80-ec2.network"); err == nil {
		t.Fatal("80-ec2.network leaked into the host's /etc")
	}

	t1 := time.Now()
	must(l.StartManager(ManagerNetworkd))
	must(l.WaitFor(ctx, "ens5 leased 10.99.0.10", 10*time.Second, hasAddr(t, l, "ens5", "10.99.0.10")))
	t.Logf("timing: networkd start -> ens5 lease %v", time.Since(t1).Round(time.Millisecond))
	if _, err := os.Stat(l.InstancePath("/run/systemd/netif/links")); err != nil {
		t.Errorf("networkd state not visible through InstancePath: %v", err)
	}

	t.Run("IMDS answers inside the instance", func(t *testing.T) {
		if got := imdsGet(t, l, "instance-id"); got != "i-0123456789abcdef0" {
			t.Errorf("instance-id = %q", got)
		}
		if got := imdsGet(t, l, "mac"); got != "02:00:00:00:05:05" {
			t.Errorf("mac = %q, want the primary ENI's", got)
		}
		if got := imdsGet(t, l, "network/interfaces/macs/"); got != "02:00:00:00:05:05/" {
			t.Errorf("macs/ = %q, want only the attached ENI", got)
		}
	})

	t.Run("ping from the primary address reaches the internet", func(t *testing.T) {
		must(l.Ping(ctx, "10.99.0.10", l.InternetAddr()))
		if n := drops(t, l, "vpc0"); n != 0 {
			t.Errorf("vpc0 drops = %d, want 0", n)
		}
	})

	t.Run("attach publishes IMDS and brings the link", func(t *testing.T) {
		t2 := time.Now()
		must(l.Attach("ens6"))
		must(l.WaitFor(ctx, "ens6 leased 10.99.1.10", 10*time.Second, hasAddr(t, l, "ens6", "10.99.1.10")))
		t.Logf("timing: attach -> ens6 lease %v", time.Since(t2).Round(time.Millisecond))
		if got := imdsGet(t, l, "network/interfaces/macs/02:00:00:00:06:06/local-ipv4s"); got != "10.99.1.10\n10.99.1.20" {
			t.Errorf("ens6 local-ipv4s = %q", got)
		}
		if linkIn(l, func() (*netlink.Handle, error) { return netlink.NewHandleAt(l.pool) }, "ens6") {
			t.Error("ens6 still in the pool")
		}
	})

	t.Run("source/destination check drops a wrong-ENI source", func(t *testing.T) {
		// Positive control: ens6 itself works.
		must(l.Ping(ctx, "10.99.1.10", "10.99.1.1"))
		// The main default route is ens5's, so this leaves through the wrong ENI.
		out, err := l.Command(ctx, "ip", "-4", "route", "get", l.InternetAddr(), "from", "10.99.1.10").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "dev ens5") {
			t.Fatalf("route to the internet from 10.99.1.10 = %q (%v), want via ens5", out, err)
		}
		before := drops(t, l, "vpc0")
		if err := l.Ping(ctx, "10.99.1.10", l.InternetAddr()); err == nil {
			t.Fatal("ping from ens6's address out of ens5 got a reply; the VPC must drop it")
		}
		if after := drops(t, l, "vpc0"); after <= before {
			t.Errorf("vpc0 drops %d -> %d, want an increase", before, after)
		}
	})

	t.Run("the check follows IMDS", func(t *testing.T) {
		h, err := l.InstanceNetlink()
		must(err)
		defer h.Close()
		ens5, err := h.LinkByName("ens5")
		must(err)
		addr, _ := netlink.ParseAddr("10.99.0.20/24")
		must(h.AddrAdd(ens5, addr))
		before := drops(t, l, "vpc0")
		if err := l.Ping(ctx, "10.99.0.20", l.InternetAddr()); err == nil {
			t.Fatal("ping from 10.99.0.20 (not in IMDS) got a reply")
		}
		must(l.UpdateIMDS(func(s *scenario.Scenario) {
			keys := s.Interfaces["02:00:00:00:05:05"]
			keys["local-ipv4s"] = append(keys["local-ipv4s"], "10.99.0.20")
		}))
		must(l.Ping(ctx, "10.99.0.20", l.InternetAddr()))
		if after := drops(t, l, "vpc0"); after != before+1 {
			t.Errorf("vpc0 drops %d -> %d, want exactly one more (counters survive the resync)", before, after)
		}
	})

	t.Run("detach and re-attach", func(t *testing.T) {
		must(l.Detach("ens6"))
		if linkIn(l, l.InstanceNetlink, "ens6") {
			t.Error("ens6 still in the instance")
		}
		if !linkIn(l, func() (*netlink.Handle, error) { return netlink.NewHandleAt(l.pool) }, "ens6") {
			t.Error("ens6 not back in the pool")
		}
		if got := imdsGet(t, l, "network/interfaces/macs/"); got != "02:00:00:00:05:05/" {
			t.Errorf("macs/ after detach = %q", got)
		}
		must(l.Attach("ens6"))
		must(l.WaitFor(ctx, "re-attached ens6 leased 10.99.1.10", 10*time.Second, hasAddr(t, l, "ens6", "10.99.1.10")))
		macs := strings.Fields(imdsGet(t, l, "network/interfaces/macs/"))
		if !slices.Equal(macs, []string{"02:00:00:00:05:05/", "02:00:00:00:06:06/"}) {
			t.Errorf("macs/ after re-attach = %q", macs)
		}
	})

	t.Run("restart keeps the lease", func(t *testing.T) {
		must(l.RestartManager())
		ok, err := hasAddr(t, l, "ens5", "10.99.0.10")()
		if err != nil || !ok {
			t.Errorf("ens5 lost 10.99.0.10 across a networkd restart (%v)", err)
		}
	})

	var inodes []uint64
	for _, ns := range l.Namespaces() {
		ino, err := nsInode(ns)
		must(err)
		inodes = append(inodes, ino)
	}
	pids := rec.startedPIDs()
	if len(pids) < 4 { // holder, dbus, dnsmasq, networkd (twice)
		t.Fatalf("lab logged only %v", pids)
	}
	t3 := time.Now()
	must(l.Close())
	closed = true
	t.Logf("timing: teardown %v", time.Since(t3).Round(time.Millisecond))
	assertNothingLeft(t, l.ID(), l.Dir(), pids, inodes)
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewFailingHalfwayCleansUp(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	rec := &logRecorder{t: t}
	dir := t.TempDir() + "/lab"
	const badSlot = maxSlot + 1 // the ENI after the first is the one New cannot make
	_, err := New(context.Background(), Options{
		Name: testPrefix,
		Dir:  dir,
		Logf: rec.logf,
		ENIs: []ENISpec{
			{Slot: 0, Name: "ens5", Attached: true},
			{Slot: badSlot, Name: "ens6"},
		},
	})
	if want := fmt.Sprintf("slot %d", badSlot); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("New with slot %d: err = %v, want a slot error", badSlot, err)
	}
	pids := rec.startedPIDs()
	if len(pids) < 2 { // holder and dbus; dnsmasq starts after the ENIs
		t.Fatalf("New failed before starting its processes (%v); the test proves nothing", pids)
	}
	var id string
	for _, line := range rec.lines {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "lab" {
			id = strings.TrimSuffix(f[1], ":")
			break
		}
	}
	if !strings.HasPrefix(id, testPrefix) {
		t.Fatalf("no lab id in the logs: %q", rec.lines)
	}
	assertNothingLeft(t, id, dir, pids, nil)
	if _, err := os.Lstat(os.TempDir() + "/" + id); !os.IsNotExist(err) {
		t.Errorf("Sweep link for %s survives (err %v)", id, err)
	}
}

func TestLabWithNetworkManager(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	ctx := context.Background()
	l, err := New(ctx, Options{
		Name: testPrefix,
		Logf: t.Logf,
		ENIs: []ENISpec{{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", Attached: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := l.StartManager(ManagerNetworkManager); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"nmcli", "connection", "add", "type", "ethernet", "ifname", "ens5", "con-name", "eni-ens5",
			"ipv4.method", "auto", "ipv6.method", "disabled"},
		{"nmcli", "--wait", "10", "connection", "up", "eni-ens5"},
	} {
		if out, err := l.Command(ctx, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	if err := l.WaitFor(ctx, "ens5 leased 10.99.0.10", 10*time.Second, hasAddr(t, l, "ens5", "10.99.0.10")); err != nil {
		t.Fatal(err)
	}
	if err := l.Ping(ctx, "10.99.0.10", l.InternetAddr()); err != nil {
		t.Error(err)
	}
	conf, err := l.ReadInstanceFile("/etc/NetworkManager/NetworkManager.conf")
	if err != nil || !strings.Contains(conf, "no-auto-default=*") {
		t.Errorf("instance NetworkManager.conf = %q (%v), want the lab's", conf, err)
	}
}

func TestSweepRemovesOnlyDeadLabs(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	prefix := fmt.Sprintf("labsweep%d", os.Getpid())
	tmp := os.TempDir()
	mk := func(id, owner string) {
		t.Helper()
		if out, err := exec.Command("ip", "netns", "add", id+"-vpc").CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = deleteNamespace(id + "-vpc"); _ = os.RemoveAll(tmp + "/" + id) })
		if err := os.Mkdir(tmp+"/"+id, 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(tmp+"/"+id+"/"+ownerFile, []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	start, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	mk(prefix+"dead", "999999999 1\n")
	mk(prefix+"live", fmt.Sprintf("%d %d\n", os.Getpid(), start))
	mk(prefix+"foreign", "") // not made by New: no owner file
	if err := Sweep(prefix); err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	if exists(netnsDir+"/"+prefix+"dead-vpc") || exists(tmp+"/"+prefix+"dead") {
		t.Error("Sweep left the dead lab")
	}
	if !exists(netnsDir+"/"+prefix+"live-vpc") || !exists(tmp+"/"+prefix+"live") {
		t.Error("Sweep removed a lab whose owner is alive")
	}
	if !exists(tmp + "/" + prefix + "foreign") {
		t.Error("Sweep removed a directory New did not make")
	}
	if err := Sweep("l"); err == nil {
		t.Error("Sweep accepted a one-letter prefix")
	}
}
