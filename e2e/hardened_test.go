package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
)

const (
	unitFile     = "../packaging/systemd/system/ec2-net-utils.service"
	tmpfilesGlob = "../packaging/systemd/tmpfiles.d/*.conf"
)

// unitDropIns are the drop-ins a package adds to the unit for a backend (packaging/systemd/ifcfg:
// installed by RPMs built --with ifcfg).
var unitDropIns = map[string]string{"ifcfg": "../packaging/systemd/ifcfg/*.conf"}

// unitSandbox is the part of the shipped unit's sandbox that can be reproduced without systemd as
// PID 1: the capability sets, no_new_privs, and the file system view (ProtectSystem=strict with
// ReadWritePaths= and RuntimeDirectory=, PrivateTmp=, ProtectHome=, ProtectProc=/ProcSubset=).
// The system call filter, RestrictAddressFamilies= and IPAddressDeny= need systemd (seccomp and
// cgroup BPF) and are checked by systemd-analyze in make package-test only.
type unitSandbox struct {
	caps     []string // setpriv names: net_admin
	writable []string // ReadWritePaths= ("-" dropped: missing ones are skipped, as systemd does)
	// created are the directories that exist before the agent starts: RuntimeDirectory= (systemd
	// creates it) and the tmpfiles.d directories (created at boot).
	created []string
}

// emulated are the unit settings the sandbox script reproduces; if the unit drops one, the
// script would be stricter than the unit and the test would no longer say what it claims.
var emulated = map[string]string{
	"ProtectSystem":   "strict",
	"PrivateTmp":      "yes",
	"ProtectHome":     "yes",
	"ProtectProc":     "invisible",
	"ProcSubset":      "pid",
	"NoNewPrivileges": "yes",
}

var capNumbers = map[string]uint{
	"net_admin":        unix.CAP_NET_ADMIN,
	"net_raw":          unix.CAP_NET_RAW,
	"net_bind_service": unix.CAP_NET_BIND_SERVICE,
}

// serviceSettings reads the [Service] assignments of the unit and then of its drop-ins, with
// systemd's rule for the list settings used here: assignments add up, an empty one resets.
func serviceSettings(t *testing.T, files ...string) map[string][]string {
	t.Helper()
	settings := map[string][]string{}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		section := ""
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "[") {
				section = line
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok || section != "[Service]" || strings.HasPrefix(line, "#") {
				continue
			}
			if v == "" {
				delete(settings, k)
				continue
			}
			settings[k] = append(settings[k], strings.Fields(v)...)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return settings
}

// readUnitSandbox reads the shipped unit with the backend's drop-ins, and the tmpfiles.d files.
func readUnitSandbox(t *testing.T, backend string) unitSandbox {
	t.Helper()
	files := []string{unitFile}
	if glob, ok := unitDropIns[backend]; ok {
		dropIns, err := filepath.Glob(glob)
		if err != nil || len(dropIns) == 0 {
			t.Fatalf("no drop-in %s for the %s backend: %v", glob, backend, err)
		}
		files = append(files, dropIns...)
	}
	settings := serviceSettings(t, files...)
	for k, want := range emulated {
		if got := settings[k]; len(got) == 0 || got[len(got)-1] != want {
			t.Fatalf("%v: %s=%v, but this test emulates %s=%s: update the sandbox script with the unit", files, k, got, k, want)
		}
	}
	var s unitSandbox
	for _, c := range settings["CapabilityBoundingSet"] {
		name := strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		if _, ok := capNumbers[name]; !ok {
			t.Fatalf("%v: capability %s unknown to this test", files, c)
		}
		if !slices.Contains(s.caps, name) {
			s.caps = append(s.caps, name)
		}
	}
	ambient := slices.Clone(settings["AmbientCapabilities"])
	bounding := slices.Clone(settings["CapabilityBoundingSet"])
	slices.Sort(ambient)
	slices.Sort(bounding)
	if !slices.Equal(slices.Compact(ambient), slices.Compact(bounding)) {
		t.Fatalf("%v: AmbientCapabilities=%v differs from CapabilityBoundingSet=%v; the sandbox assumes they are equal", files, ambient, bounding)
	}
	for _, p := range settings["ReadWritePaths"] {
		s.writable = append(s.writable, strings.TrimPrefix(p, "-"))
	}
	for _, d := range settings["RuntimeDirectory"] {
		s.created = append(s.created, "/run/"+d)
	}
	tmpfiles, err := filepath.Glob(tmpfilesGlob)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range tmpfiles {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "d" {
				s.created = append(s.created, f[1])
			}
		}
	}
	s.writable = append(s.writable, s.created...)
	if len(s.caps) == 0 || len(s.created) == 0 {
		t.Fatalf("%v: no CapabilityBoundingSet=, or no RuntimeDirectory= and no tmpfiles.d directory", files)
	}
	for _, d := range s.created {
		if !strings.HasPrefix(d, "/run/") {
			t.Fatalf("%s is created before the agent starts, but the test can only create directories under /run (the lab's own)", d)
		}
	}
	return s
}

// script is a shell script that, run as `unshare --mount sh script cmd args...` inside the
// instance, sets up the unit's file system view in the new mount namespace and execs cmd with
// the unit's capabilities only. Every remount is "remount,bind": it changes this namespace's
// mount, never the file system under it.
func (s unitSandbox) script() string {
	caps := "-all"
	for _, c := range s.caps {
		caps += ",+" + c
	}
	return fmt.Sprintf(`set -eu
writable=%q
# ReadWritePaths= and RuntimeDirectory=: bind each onto itself, so it stays writable below.
for p in $writable; do if [ -d "$p" ]; then mount --bind "$p" "$p"; fi; done
# ProtectSystem=strict: every other mount read-only, the API file systems aside.
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
	case " $writable " in *" $m "*) continue ;; esac
	case "$m" in /proc|/proc/*|/dev|/dev/*) continue ;; esac
	# A mount listed but hidden under a later one (the host's /run/netns under the lab's /run)
	# cannot be reached: nothing to protect.
	if [ ! -e "$m" ]; then continue; fi
	mount -o remount,bind,ro "$m"
done
# PrivateTmp=yes
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
# ProtectHome=yes
for d in /home /root /run/user; do if [ -d "$d" ]; then mount -t tmpfs -o ro,mode=0755 tmpfs "$d"; fi; done
# ProtectProc=invisible, ProcSubset=pid
mount -t proc -o hidepid=invisible,subset=pid proc /proc
# CapabilityBoundingSet=, AmbientCapabilities= (as root: these are all it keeps), NoNewPrivileges=yes
exec setpriv --bounding-set=%s --inh-caps=%s --ambient-caps=%s --no-new-privs -- "$@"
`, strings.Join(s.writable, " "), caps, caps, caps)
}

func (s unitSandbox) capMask() uint64 {
	var m uint64
	for _, c := range s.caps {
		m |= 1 << capNumbers[c]
	}
	return m
}

// procStatus returns the fields of /proc/<pid>/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// TestHardenedDaemonConfiguresENIs runs the daemon as the shipped unit would, with each backend's
// drop-ins (CAP_NET_ADMIN only for networkd and NetworkManager; a read-only file system but for
// the backend's directories; private /tmp, no /home, a pid-only /proc), and checks it still does
// its whole job: source rules, secondary addresses and ENI tables at start, a hot-attached ENI,
// a detached one cleaned up.
func TestHardenedDaemonConfiguresENIs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		sb := readUnitSandbox(t, bc.name)
		e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), secondENI(), thirdENI()}})
		e.addForeignRules()

		// What exists before the unit starts: RuntimeDirectory= and the tmpfiles.d directories.
		// The binary goes where the sandbox can run it (/tmp, where the test built it, is private
		// to the sandbox).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := e.l.Command(ctx, append([]string{"mkdir", "-p", "/run/e2e-hardened"}, sb.created...)...).CombinedOutput(); err != nil {
			t.Fatalf("mkdir: %v: %s", err, out)
		}
		bin, err := os.ReadFile(agentBin)
		must(t, err)
		must(t, e.l.WriteInstanceFile("/run/e2e-hardened/ec2-net-utils", string(bin), 0o755))
		must(t, e.l.WriteInstanceFile("/run/e2e-hardened/sandbox.sh", sb.script(), 0o644))
		sandboxed := func(args ...string) []string {
			return append([]string{"unshare", "--mount", "--propagation", "private", "sh", "/run/e2e-hardened/sandbox.sh"}, args...)
		}

		// The sandbox is real: outside the writable paths nothing can be written, inside it can.
		for _, c := range []struct {
			cmd   string
			works bool
		}{
			{"touch /etc/e2e-hardened-probe", false},
			{"touch /usr/e2e-hardened-probe", false},
			{"touch /run/ec2-net-utils/.e2e-probe && rm /run/ec2-net-utils/.e2e-probe", true},
			{"touch /run/systemd/network/.e2e-probe && rm /run/systemd/network/.e2e-probe", true},
			{"touch /tmp/probe && rm /tmp/probe", true},
			{"ip rule add from 192.0.2.99 table 999 prio 999 && ip rule del prio 999", true}, // CAP_NET_ADMIN
		} {
			out, err := e.l.Command(ctx, sandboxed("sh", "-c", c.cmd)...).CombinedOutput()
			if (err == nil) != c.works {
				t.Errorf("in the sandbox, %q: err=%v (%s); want it to succeed=%v", c.cmd, err, out, c.works)
			}
		}

		p, err := e.l.Start("agent", sandboxed("/run/e2e-hardened/ec2-net-utils", "daemon", "--config", "/etc/ec2-net-utils.conf")...)
		must(t, err)
		e.agent = p
		e.waitLog("first reconcile pass", "reconciled: reason=start")

		// nsenter, unshare, sh and setpriv all exec in place: the PID is the agent's.
		st := procStatus(t, p.Pid())
		want := fmt.Sprintf("%016x", sb.capMask())
		for _, k := range []string{"CapEff", "CapPrm", "CapBnd", "CapAmb"} {
			if st[k] != want {
				t.Errorf("agent %s = %s, want %s (%v only)", k, st[k], want, sb.caps)
			}
		}
		if st["NoNewPrivs"] != "1" {
			t.Errorf("agent NoNewPrivs = %q, want 1", st["NoNewPrivs"])
		}

		e.waitRule(ens6Rule10, true)
		e.waitRule(ens6Rule20, true)
		e.waitForAddress("ens6", "10.99.1.20/32")
		e.waitForAddress("ens5", "10.99.0.20/32")
		e.waitFor("ens6's table routes", func() (bool, error) { return slices.Equal(e.routes(10001), ens6Table), nil })
		// The DHCP addresses: the agent's dhclient gets them under ifcfg, and NetworkManager
		// renews them when the agent's profile takes over the device.
		e.waitForAddress("ens6", "10.99.1.10/24")
		for _, src := range []string{"10.99.0.20", "10.99.1.10", "10.99.1.20"} {
			e.mustPing(src)
		}

		must(t, e.l.Attach("ens7"))
		e.waitRule(ens7Rule, true)
		e.waitForAddress("ens7", "10.99.2.10/24")
		e.mustPing("10.99.2.10")

		must(t, e.l.Detach("ens6"))
		e.waitFor("ens6's files removed", func() (bool, error) { return len(e.filesOf("ens6")) == 0, nil })
		e.waitRule(ens6Rule10, false)

		if log := strings.ToLower(e.agent.Log()); strings.Contains(log, "read-only file system") || strings.Contains(log, "operation not permitted") {
			t.Errorf("the agent hit the sandbox:\n%s", e.agent.Log())
		}
		e.assertForeignRulesIntact()
		e.stopAgent()
		t.Logf("agent ran with CapEff=%s (%s only)", st["CapEff"], strings.Join(sb.caps, ", "))
	})
}
