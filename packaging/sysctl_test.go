package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The values amazon-ec2-net-utils 2.7.2+ set (its sysctl/90-ena-tuning-defaults.conf).
var enaTuning = map[string]string{
	"net.ipv4.neigh.default.delay_first_probe_time": "1",
	"net.ipv4.neigh.default.base_reachable_time_ms": "5000",
	"net.ipv4.neigh.default.retrans_time_ms":        "500",
	"net.ipv4.neigh.default.ucast_solicit":          "0",
	"net.ipv4.tcp_syn_retries":                      "3",
}

func TestENATuningDefaultsAreThoseOfAmazonEC2NetUtils(t *testing.T) {
	got := map[string]string{}
	f, err := os.Open("sysctl.d/90-ena-tuning-defaults.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		got[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if len(got) != len(enaTuning) {
		t.Errorf("got %d settings, want %d: %v", len(got), len(enaTuning), got)
	}
	for k, v := range enaTuning {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// The udev rule runs the script the packages install, for the drivers the agent manages.
func TestENATuningUdevRuleRunsTheInstalledScript(t *testing.T) {
	root := installed(t, false)
	rule, err := os.ReadFile(filepath.Join(root, "usr/lib/udev/rules.d/90-ec2-net-utils-ena-tuning.rules"))
	if err != nil {
		t.Fatal(err)
	}
	const run = `RUN+="/usr/libexec/ec2-net-utils/ena-tuning $name"`
	if !strings.Contains(string(rule), run) || !strings.Contains(string(rule), `ENV{ID_NET_DRIVER}=="ena|ixgbevf|vif"`) {
		t.Fatalf("rule does not run %s for ena|ixgbevf|vif:\n%s", run, rule)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/libexec/ec2-net-utils/ena-tuning")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("ena-tuning not installed executable: %v", err)
	}
}

// An interface that existed before the defaults were set gets them: in a network namespace of
// the test's own (neighbour settings of interfaces are per namespace; the defaults are read from
// a directory standing in for net.ipv4.neigh.default, which exists only in the host namespace
// and is never touched here).
func TestENATuningGivesAnExistingInterfaceTheDefaults(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root and a network namespace (not with -short)")
	}
	defaults := t.TempDir()
	want := map[string]string{}
	for k, v := range enaTuning {
		name, ok := strings.CutPrefix(k, "net.ipv4.neigh.default.")
		if !ok {
			continue
		}
		want[name] = v
		if err := os.WriteFile(filepath.Join(defaults, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A fake /sys/class/net for --all: eth1 is an ENA, veth1 is not and keeps the kernel's values.
	sysnet := t.TempDir()
	for dev, driver := range map[string]string{"eth1": "ena", "veth1": "veth"} {
		d := filepath.Join(sysnet, dev, "device")
		if err := os.MkdirAll(filepath.Join(sysnet, "drivers", driver), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(sysnet, "drivers", driver), filepath.Join(d, "driver")); err != nil {
			t.Fatal(err)
		}
	}
	script, err := filepath.Abs("libexec/ena-tuning")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, args, tuned, untouched string }{
		{"one interface (udev)", "eth1", "eth1", "veth1"},
		{"every ENI (package install)", "--all", "eth1", "veth1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// unshare -n: a namespace that exists as long as the shell; the veth pair appears
			// there with the kernel's defaults, before the script runs.
			sh := `set -e
ip link add eth1 type veth peer name veth1
"$0" ` + tc.args + `
for k in delay_first_probe_time base_reachable_time_ms retrans_time_ms ucast_solicit; do
  echo "eth1 $k $(cat /proc/sys/net/ipv4/neigh/eth1/$k)"
  echo "veth1 $k $(cat /proc/sys/net/ipv4/neigh/veth1/$k)"
done`
			cmd := exec.Command("unshare", "--net", "sh", "-c", sh, script)
			cmd.Env = append(os.Environ(), "EC2NET_ENA_TUNING_NEIGH_DEFAULTS="+defaults, "EC2NET_ENA_TUNING_SYS_CLASS_NET="+sysnet)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Fields(line)
				if len(f) != 3 {
					t.Fatalf("unexpected output %q", line)
				}
				dev, key, val := f[0], f[1], f[2]
				switch dev {
				case tc.tuned:
					if val != want[key] {
						t.Errorf("%s %s = %s, want %s", dev, key, val, want[key])
					}
				case tc.untouched:
					if val == want[key] && key == "ucast_solicit" {
						t.Errorf("%s %s = %s: the script tuned an interface that is not an ENI", dev, key, val)
					}
				}
			}
		})
	}
}
