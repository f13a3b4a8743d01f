package conf

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeConf writes body to a fresh file and returns its path.
func writeConf(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ec2-net-utils.conf")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// configErrors returns every *Error in err, failing the test if err holds anything else.
func configErrors(t *testing.T, err error) []*Error {
	t.Helper()
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*Error
	for _, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %q is not a *conf.Error", e)
		}
		out = append(out, ce)
	}
	return out
}

func TestDefaultsAreValid(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatalf("Defaults().Validate() = %v", err)
	}
}

func TestDefaultsReturnsFreshSlices(t *testing.T) {
	a := Defaults()
	a.Interfaces.Drivers[0] = "changed"
	if got := Defaults().Interfaces.Drivers[0]; got != "ena" {
		t.Fatalf("mutating one Defaults() changed the next: drivers[0] = %q", got)
	}
}

func TestMissingDefaultFileGivesDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.conf")
	got, err := Load(path, false, nil)
	if err != nil {
		t.Fatalf("Load(missing, explicit=false) = %v", err)
	}
	if diff := cmp.Diff(Defaults(), got); diff != "" {
		t.Fatalf("config differs from defaults (-want +got):\n%s", diff)
	}
}

func TestMissingExplicitFileIsConfigError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.conf")
	got, err := Load(path, true, nil)
	if err == nil {
		t.Fatal("Load(missing, explicit=true) succeeded")
	}
	if !IsConfigError(err) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v: want a config error wrapping fs.ErrNotExist", err)
	}
	if want := path + ": file does not exist"; err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
	if diff := cmp.Diff(Config{}, got); diff != "" {
		t.Fatalf("a Config came back with the error:\n%s", diff)
	}
}

func TestEmptyFileGivesDefaults(t *testing.T) {
	got, err := Load(writeConf(t, "# nothing set\n"), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Defaults(), got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestFullValidFile(t *testing.T) {
	path := writeConf(t, `
backend = "networkd"
log_level = "debug"
refresh_interval = "1m30s"

[imds]
endpoint = "http://127.0.0.1:8080"
timeout = "500ms"
max_attempts = 2
max_backoff = "250ms"
propagation_timeout = "1m"

[interfaces]
drivers = ["ena"]
exclude = ["eth3", "0A:1B:2C:3D:4E:5F"]
primary_rules = true
main_default_route = false
assign_prefix_addresses = true
secondary_addresses = true
container_host = "vpc-cni"
mtu = 1500

[networkd]
dir = "/etc/systemd/network"

[networkmanager]
persist = true

[ifcfg]
dir = "/tmp/ifcfg"
dhclient_conf_dir = "/tmp/dhcp"
dhclient_script = "/opt/ec2net/dhclient-script"
broadcast_renewals = false

[daemon]
rule_restore_interval = "30s"
full_refresh_every = 1
`)
	want := Config{
		Backend:         "networkd",
		LogLevel:        "debug",
		RefreshInterval: 90 * time.Second,
		IMDS: IMDS{
			Endpoint:           "http://127.0.0.1:8080",
			Timeout:            500 * time.Millisecond,
			MaxAttempts:        2,
			MaxBackoff:         250 * time.Millisecond,
			PropagationTimeout: time.Minute,
		},
		Interfaces: Interfaces{
			// Replaced, not merged element by element into the three defaults.
			Drivers:               []string{"ena"},
			Exclude:               []string{"eth3", "0A:1B:2C:3D:4E:5F"},
			PrimaryRules:          true,
			MainDefaultRoute:      false,
			AssignPrefixAddresses: true,
			SecondaryAddresses:    true,
			ContainerHost:         "vpc-cni",
			MTU:                   1500,
		},
		Networkd:       Networkd{Dir: "/etc/systemd/network"},
		NetworkManager: NetworkManager{Persist: true},
		Ifcfg: Ifcfg{Dir: "/tmp/ifcfg", DHClientConfDir: "/tmp/dhcp", DHClientScript: "/opt/ec2net/dhclient-script",
			BroadcastRenewals: false},
		Daemon: Daemon{RuleRestoreInterval: 30 * time.Second, FullRefreshEvery: 1},
	}
	got, err := Load(path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestPartialTableKeepsOtherDefaults(t *testing.T) {
	got, err := Load(writeConf(t, "[imds]\ntimeout = \"5s\"\n"), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.IMDS.Timeout = 5 * time.Second
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	path := writeConf(t, `
log_level = "debug"
[imds]
endpoint = "http://127.0.0.1:1"
timeout = "5s"
[interfaces]
primary_rules = false
exclude = ["eth9"]
drivers = ["ena", "vif"]
`)
	env := []string{
		"PATH=/usr/bin",
		"EC2_NET_UTILS_LOG_LEVEL=warn",
		"EC2_NET_UTILS_IMDS_ENDPOINT=http://[fd00:ec2::254]",
		"EC2_NET_UTILS_INTERFACES_PRIMARY_RULES=true",
		"EC2_NET_UTILS_INTERFACES_DRIVERS= ena , ixgbevf ",
		"EC2_NET_UTILS_INTERFACES_EXCLUDE=", // clears the file's list
		"EC2_NET_UTILS_INTERFACES_MTU=9001",
		"EC2_NET_UTILS_DAEMON_FULL_REFRESH_EVERY=7",
		"EC2_NET_UTILS_REFRESH_INTERVAL=1m",
	}
	got, err := Load(path, true, env)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.LogLevel = "warn"
	want.IMDS.Endpoint = "http://[fd00:ec2::254]"
	want.IMDS.Timeout = 5 * time.Second // from the file, no variable for it
	want.Interfaces.PrimaryRules = true
	want.Interfaces.Drivers = []string{"ena", "ixgbevf"}
	want.Interfaces.Exclude = []string{}
	want.Interfaces.MTU = 9001
	want.Daemon.FullRefreshEvery = 7
	want.RefreshInterval = time.Minute
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestEnvWithoutFile(t *testing.T) {
	got, err := Load(filepath.Join(t.TempDir(), "absent"), false, []string{"EC2_NET_UTILS_BACKEND=ifcfg"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Backend != "ifcfg" {
		t.Fatalf("backend = %q, want ifcfg", got.Backend)
	}
}

// TestLoadErrors covers every class of mistake. Each must come back as a *Error whose message
// names the file (or "environment") and the key (or variable), with no Config.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string   // written to a temp file; "-" means no file
		env     []string // environment
		source  string   // "FILE" stands for the temp file's path
		key     string
		problem string // substring of the problem
	}{
		{name: "unknown top-level key", file: "loglevel = \"info\"\n",
			source: "FILE", key: "loglevel", problem: `unknown key; did you mean "log_level"?`},
		{name: "unknown key without a close match lists the valid ones", file: "colour = \"blue\"\n",
			source: "FILE", key: "colour", problem: "valid at the top level: backend, daemon, hostname, ifcfg, imds, interfaces, log_level, networkd, networkmanager, refresh_interval"},
		{name: "unknown table", file: "[dhcp]\nx = 1\n",
			source: "FILE", key: "dhcp", problem: "unknown table"},
		{name: "unknown nested key", file: "[imds]\nretries = 3\n",
			source: "FILE", key: "imds.retries", problem: "unknown key; valid in [imds]: endpoint, max_attempts, max_backoff, propagation_timeout, timeout"},
		{name: "nested key misspelt", file: "[interfaces]\nprimary-rules = true\n",
			source: "FILE", key: "interfaces.primary-rules", problem: `did you mean "primary_rules"?`},
		{name: "networkd has only dir", file: "[networkd]\nmanage_foreign_rules_dropin = true\n",
			source: "FILE", key: "networkd.manage_foreign_rules_dropin", problem: "unknown key"},
		{name: "dotted quoted key is not a path", file: "\"imds.timeout\" = \"2s\"\n",
			source: "FILE", key: "imds.timeout", problem: "unknown key"},
		{name: "string for a bool", file: "[interfaces]\nprimary_rules = \"yes\"\n",
			source: "FILE", key: "interfaces.primary_rules", problem: `want true or false, got the string "yes"`},
		{name: "string for an int", file: "[imds]\nmax_attempts = \"4\"\n",
			source: "FILE", key: "imds.max_attempts", problem: `want a whole number, got the string "4"`},
		{name: "float for an int", file: "[interfaces]\nmtu = 1500.0\n",
			source: "FILE", key: "interfaces.mtu", problem: "want a whole number, got the float 1500"},
		{name: "integer for a duration", file: "refresh_interval = 10\n",
			source: "FILE", key: "refresh_interval", problem: `want a duration string such as "2s", got the integer 10`},
		{name: "string for a list", file: "[interfaces]\ndrivers = \"ena\"\n",
			source: "FILE", key: "interfaces.drivers", problem: `want a list of strings such as ["a", "b"], got the string "ena"`},
		{name: "list element of wrong type", file: "[interfaces]\nexclude = [\"eth1\", 2]\n",
			source: "FILE", key: "interfaces.exclude", problem: "element 2: want a string, got the integer 2"},
		{name: "list for a string", file: "backend = [\"networkd\"]\n",
			source: "FILE", key: "backend", problem: "want a string, got a list"},
		{name: "table for a string", file: "[backend]\nname = \"networkd\"\n",
			source: "FILE", key: "backend", problem: "want a string, got a table"},
		{name: "scalar for a table", file: "imds = \"http://x\"\n",
			source: "FILE", key: "imds", problem: `want a table, got the string "http://x"`},
		{name: "bad backend", file: "backend = \"systemd\"\n",
			source: "FILE", key: "backend", problem: `"systemd" is not one of auto, networkd, networkmanager, ifcfg`},
		{name: "bad log level", file: "log_level = \"verbose\"\n",
			source: "FILE", key: "log_level", problem: `"verbose" is not one of trace, debug, info, warn, error`},
		{name: "bad duration", file: "[imds]\ntimeout = \"abc\"\n",
			source: "FILE", key: "imds.timeout", problem: `"abc" is not a duration`},
		{name: "duration below range", file: "refresh_interval = \"500ms\"\n",
			source: "FILE", key: "refresh_interval", problem: "500ms is out of range; want 1s to 1h"},
		{name: "duration above range", file: "refresh_interval = \"2h\"\n",
			source: "FILE", key: "refresh_interval", problem: "2h is out of range; want 1s to 1h"},
		{name: "negative duration", file: "[daemon]\nrule_restore_interval = \"-5s\"\n",
			source: "FILE", key: "daemon.rule_restore_interval", problem: "-5s is out of range"},
		{name: "int out of range", file: "[imds]\nmax_attempts = 0\n",
			source: "FILE", key: "imds.max_attempts", problem: "0 is out of range; want 1 to 20"},
		{name: "mtu out of range", file: "[interfaces]\nmtu = 100\n",
			source: "FILE", key: "interfaces.mtu", problem: "100 is out of range; want 0 (keep the MTU from DHCP) or 576 to 9216"},
		{name: "unknown container host", file: "[interfaces]\ncontainer_host = \"eks\"\n",
			source: "FILE", key: "interfaces.container_host", problem: `"eks" is not one of auto, vpc-cni, off`},
		{name: "prefix addresses without secondary addresses", file: "[interfaces]\nsecondary_addresses = false\nassign_prefix_addresses = true\n",
			source: "FILE", key: "interfaces.assign_prefix_addresses", problem: "secondary_addresses = false assigns no address at all"},
		{name: "full refresh every zero", file: "[daemon]\nfull_refresh_every = 0\n",
			source: "FILE", key: "daemon.full_refresh_every", problem: "0 is out of range; want 1 to 10000"},
		{name: "URL with a bad scheme", file: "[imds]\nendpoint = \"ftp://169.254.169.254\"\n",
			source: "FILE", key: "imds.endpoint", problem: "want an http:// or https:// URL"},
		{name: "URL without scheme", file: "[imds]\nendpoint = \"169.254.169.254\"\n",
			source: "FILE", key: "imds.endpoint", problem: "want an http:// or https:// URL"},
		{name: "malformed URL", file: "[imds]\nendpoint = \"http://[::1\"\n",
			source: "FILE", key: "imds.endpoint", problem: `"http://[::1" is not a URL`},
		{name: "URL with a path", file: "[imds]\nendpoint = \"http://127.0.0.1/latest\"\n",
			source: "FILE", key: "imds.endpoint", problem: "no path"},
		{name: "bad MAC in exclude", file: "[interfaces]\nexclude = [\"eth1\", \"0a:1b:2c:3d:4e\"]\n",
			source: "FILE", key: "interfaces.exclude", problem: `element 2: "0a:1b:2c:3d:4e" is not a MAC address`},
		{name: "non-hex MAC in exclude", file: "[interfaces]\nexclude = [\"0a:1b:2c:3d:4e:zz\"]\n",
			source: "FILE", key: "interfaces.exclude", problem: "is not a MAC address"},
		{name: "too long interface name in exclude", file: "[interfaces]\nexclude = [\"averyveryverylongname\"]\n",
			source: "FILE", key: "interfaces.exclude", problem: "names are at most 15 characters"},
		{name: "empty drivers", file: "[interfaces]\ndrivers = []\n",
			source: "FILE", key: "interfaces.drivers", problem: "no interface would be managed"},
		{name: "relative directory", file: "[networkd]\ndir = \"run/network\"\n",
			source: "FILE", key: "networkd.dir", problem: `"run/network" is not an absolute path`},
		{name: "TOML syntax error names the line", file: "backend = \"auto\"\n\nlog_level = \"info\n",
			source: "FILE", problem: "line 3, column 18: invalid TOML: basic strings cannot have new lines"},
		{name: "unclosed table header", file: "[imds\ntimeout = \"1s\"\n",
			source: "FILE", problem: "line 1, column 6: invalid TOML"},
		// go-toml reports redefinitions without a position.
		{name: "duplicate key", file: "backend = \"auto\"\nbackend = \"ifcfg\"\n",
			source: "FILE", problem: "invalid TOML: key backend is already defined"},
		{name: "unknown env var", file: "-", env: []string{"EC2_NET_UTILS_LOGLEVEL=debug"},
			source: SourceEnvironment, key: "EC2_NET_UTILS_LOGLEVEL", problem: "unknown variable; did you mean EC2_NET_UTILS_LOG_LEVEL?"},
		{name: "unknown env var naming a table", file: "-", env: []string{"EC2_NET_UTILS_IMDS=x"},
			source: SourceEnvironment, key: "EC2_NET_UTILS_IMDS", problem: "unknown variable"},
		{name: "bad env bool", file: "-", env: []string{"EC2_NET_UTILS_INTERFACES_PRIMARY_RULES=yes"},
			source: SourceEnvironment, key: "EC2_NET_UTILS_INTERFACES_PRIMARY_RULES", problem: `"yes" is not a boolean`},
		{name: "bad env int", file: "-", env: []string{"EC2_NET_UTILS_IMDS_MAX_ATTEMPTS=four"},
			source: SourceEnvironment, key: "EC2_NET_UTILS_IMDS_MAX_ATTEMPTS", problem: `"four" is not a whole number`},
		{name: "bad env duration", file: "-", env: []string{"EC2_NET_UTILS_IMDS_TIMEOUT=2"},
			source: SourceEnvironment, key: "EC2_NET_UTILS_IMDS_TIMEOUT", problem: `"2" is not a duration`},
		{name: "invalid env value is blamed on the variable", file: "backend = \"networkd\"\n",
			env:    []string{"EC2_NET_UTILS_BACKEND=systemd"},
			source: SourceEnvironment, key: "EC2_NET_UTILS_BACKEND", problem: `"systemd" is not one of`},
		{name: "bad MAC from env", file: "-", env: []string{"EC2_NET_UTILS_INTERFACES_EXCLUDE=eth1,0a:1b"},
			source: SourceEnvironment, key: "EC2_NET_UTILS_INTERFACES_EXCLUDE", problem: `element 2: "0a:1b" is not a MAC address`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.conf")
			if tc.file != "-" {
				path = writeConf(t, tc.file)
			}
			got, err := Load(path, false, tc.env)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", got)
			}
			if !IsConfigError(err) {
				t.Fatalf("IsConfigError(%q) = false", err)
			}
			if diff := cmp.Diff(Config{}, got); diff != "" {
				t.Fatalf("a Config came back with the error:\n%s", diff)
			}
			errs := configErrors(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(errs), err)
			}
			e := errs[0]
			source := tc.source
			if source == "FILE" {
				source = path
			}
			if e.Source != source || e.Key != tc.key || !strings.Contains(e.Problem, tc.problem) {
				t.Fatalf("error = {Source: %q, Key: %q, Problem: %q}\nwant    {Source: %q, Key: %q, Problem containing %q}",
					e.Source, e.Key, e.Problem, source, tc.key, tc.problem)
			}
			// The message a user reads starts with where and what.
			prefix := source + ": "
			if tc.key != "" {
				prefix += tc.key + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("message %q does not start with %q", err, prefix)
			}
		})
	}
}

// TestAllProblemsReportedAtOnce: a user fixing a file sees every bad key in one run (type and
// value problems alike), file problems before environment ones, each sorted by key.
func TestAllProblemsReportedAtOnce(t *testing.T) {
	path := writeConf(t, `
backend = "bogus"
[imds]
timeout = "abc"
max_attempts = 99
[interfaces]
primary_rules = "yes"
speed = 10
`)
	env := []string{"EC2_NET_UTILS_NOPE=1", "EC2_NET_UTILS_LOG_LEVEL=loud"}
	_, err := Load(path, true, env)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	var got []string
	for _, e := range configErrors(t, err) {
		got = append(got, e.Source+" "+e.Key)
	}
	want := []string{
		path + " backend",
		path + " imds.max_attempts",
		path + " imds.timeout",
		path + " interfaces.primary_rules",
		path + " interfaces.speed",
		SourceEnvironment + " EC2_NET_UTILS_LOG_LEVEL",
		SourceEnvironment + " EC2_NET_UTILS_NOPE",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("errors (-want +got):\n%s\nfull message:\n%v", diff, err)
	}
}

func TestUnreadableFileIsConfigError(t *testing.T) {
	// A path through a regular file cannot be opened, even by root (ENOTDIR).
	path := filepath.Join(writeConf(t, ""), "ec2-net-utils.conf")
	_, err := Load(path, false, nil)
	if !IsConfigError(err) || err.Error() != path+": cannot read: not a directory" {
		t.Fatalf("err = %v, want a config error naming %s", err, path)
	}
}

func TestEmptyPathMeansDefaultPath(t *testing.T) {
	// Only meaningful where the default file is absent (build machines, CI); an installed
	// configuration would make the result depend on the host.
	if _, err := os.Stat(DefaultPath); err == nil {
		t.Skipf("%s exists on this host", DefaultPath)
	}
	_, err := Load("", true, nil)
	if err == nil || !strings.HasPrefix(err.Error(), DefaultPath+": ") {
		t.Fatalf("Load(\"\", explicit) = %v, want an error naming %s", err, DefaultPath)
	}
}

func TestIsConfigError(t *testing.T) {
	ce := &Error{Source: "f", Key: "k", Problem: "p"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{ce, true},
		{errors.Join(errors.New("x"), ce), true},
		{wrap(ce), true},
	} {
		if got := IsConfigError(tc.err); got != tc.want {
			t.Errorf("IsConfigError(%v) = %t, want %t", tc.err, got, tc.want)
		}
	}
}

func wrap(err error) error { return &wrapped{err} }

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "cli: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

func TestErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  Error
		want string
	}{
		{Error{Source: "/etc/ec2-net-utils.conf", Key: "imds.timeout", Problem: `"abc" is not a duration`},
			`/etc/ec2-net-utils.conf: imds.timeout: "abc" is not a duration`},
		{Error{Source: "/x.conf", Problem: "file does not exist"}, "/x.conf: file does not exist"},
		{Error{Key: "backend", Problem: "bad"}, "backend: bad"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
