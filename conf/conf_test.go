package conf

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

const exampleFile = "../packaging/ec2-net-utils.conf"

// TestExampleFileIsDefaults keeps the shipped, annotated file and Defaults() from drifting:
// as shipped it must change nothing, and with every setting uncommented it must still equal the
// defaults and mention every key exactly once.
func TestExampleFileIsDefaults(t *testing.T) {
	b, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("as shipped", func(t *testing.T) {
		got, err := Load(exampleFile, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Defaults(), got); diff != "" {
			t.Fatalf("(-defaults +example):\n%s", diff)
		}
	})

	// A setting is a line "#key = value"; prose is "# text".
	setting := regexp.MustCompile(`^#([a-z_]+) = `)
	header := regexp.MustCompile(`^\[([a-z_]+)\]$`)
	var uncommented []string
	seen := map[string]int{}
	table := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			table = m[1] + "."
		}
		if m := setting.FindStringSubmatch(line); m != nil {
			seen[table+m[1]]++
			line = strings.TrimPrefix(line, "#")
		}
		uncommented = append(uncommented, line)
	}

	t.Run("every key documented once", func(t *testing.T) {
		for _, f := range newSchema().fields {
			if n := seen[f.key]; n != 1 {
				t.Errorf("key %s appears %d times in %s, want once", f.key, n, exampleFile)
			}
			delete(seen, f.key)
		}
		for key := range seen {
			t.Errorf("%s documents %s, which is not a key", exampleFile, key)
		}
	})

	t.Run("uncommented", func(t *testing.T) {
		got, err := Load(writeConf(t, strings.Join(uncommented, "\n")), true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Defaults(), got); diff != "" {
			t.Fatalf("documented defaults differ from Defaults() (-code +doc):\n%s", diff)
		}
	})
}

func TestEnvNamesAreUniqueAndDocumentedForm(t *testing.T) {
	s := newSchema()
	if len(s.byEnv) != len(s.fields) {
		t.Fatalf("%d keys map to %d variable names: two keys share a variable", len(s.fields), len(s.byEnv))
	}
	for key, want := range map[string]string{
		"log_level":                "EC2_NET_UTILS_LOG_LEVEL",
		"imds.endpoint":            "EC2_NET_UTILS_IMDS_ENDPOINT",
		"interfaces.primary_rules": "EC2_NET_UTILS_INTERFACES_PRIMARY_RULES",
		"ifcfg.dhclient_conf_dir":  "EC2_NET_UTILS_IFCFG_DHCLIENT_CONF_DIR",
	} {
		f, ok := s.byKey[key]
		if !ok {
			t.Fatalf("no key %s", key)
		}
		if f.env != want {
			t.Errorf("env name of %s = %s, want %s", key, f.env, want)
		}
	}
}

func TestSchemaHasTheDocumentedKeys(t *testing.T) {
	var got []string
	for _, f := range newSchema().fields {
		got = append(got, f.key)
	}
	want := []string{
		"backend", "log_level", "refresh_interval",
		"imds.endpoint", "imds.timeout", "imds.max_attempts", "imds.max_backoff", "imds.propagation_timeout",
		"interfaces.drivers", "interfaces.exclude", "interfaces.primary_rules", "interfaces.main_default_route",
		"interfaces.assign_prefix_addresses", "interfaces.secondary_addresses", "interfaces.container_host",
		"interfaces.mtu",
		"networkd.dir",
		"networkmanager.persist",
		"ifcfg.dir", "ifcfg.dhclient_conf_dir", "ifcfg.dhclient_script", "ifcfg.broadcast_renewals",
		"daemon.rule_restore_interval", "daemon.full_refresh_every",
		"hostname.from_imds",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("keys are a public interface; changed (-want +got):\n%s", diff)
	}
}

func TestPlanOptions(t *testing.T) {
	c := Defaults()
	c.Interfaces.Exclude = []string{"eth3", "0A:1B:2C:3D:4E:5F"}
	c.Interfaces.PrimaryRules = true
	c.Interfaces.AssignPrefixAddresses = true
	c.Interfaces.MTU = 9001
	got := c.PlanOptions()
	want := core.PlanOptions{
		Drivers:               []string{"ena", "ixgbevf", "vif"},
		Exclude:               []string{"eth3", "0a:1b:2c:3d:4e:5f"}, // IMDS spells MACs in lower case
		PrimaryRules:          true,
		MainDefaultRoute:      true,
		AssignPrefixAddresses: true,
		MTU:                   9001,
	}
	// secondary_addresses = true is the zero value of its inverse, so the planner's defaults
	// and a PlanOptions literal that does not name it agree.
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	got.Drivers[0] = "changed"
	if c.Interfaces.Drivers[0] != "ena" {
		t.Fatal("PlanOptions shares the Drivers slice with the Config")
	}
}

// TestValidateInCode: a Config built in code (tests, the CLI) is checked the same way, with
// errors naming the key and no source.
func TestValidateInCode(t *testing.T) {
	c := Defaults()
	c.Backend = "nm"
	c.IMDS.Timeout = 0
	c.Interfaces.Exclude = []string{"eth0", "xx:yy"}
	err := c.Validate()
	var got []string
	for _, e := range configErrors(t, err) {
		got = append(got, e.Error())
	}
	want := []string{
		`backend: "nm" is not one of auto, networkd, networkmanager, ifcfg`,
		"imds.timeout: 0s is out of range; want 100ms to 1m",
		`interfaces.exclude: element 2: "xx:yy" is not a MAC address; want six hex bytes such as "0a:1b:2c:3d:4e:5f"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestSuggest(t *testing.T) {
	valid := []string{"endpoint", "timeout", "max_attempts"}
	for name, want := range map[string]string{
		"max-attempts": "max_attempts",
		"Timeout":      "timeout",
		"timout":       "timeout",
		"retries":      "",
	} {
		if got := suggest(name, valid); got != want {
			t.Errorf("suggest(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestIfcfgDHClientScriptMustBeAnAbsoluteFilePath(t *testing.T) {
	for _, p := range []string{"", "dhclient-script", "/usr/libexec/ec2-net-utils/"} {
		c := Defaults()
		c.Ifcfg.DHClientScript = p
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "ifcfg.dhclient_script") {
			t.Errorf("dhclient_script = %q: Validate() = %v, want an error naming the key", p, err)
		}
	}
}

func TestSecondaryAddressesFalseReachesThePlanner(t *testing.T) {
	c := Defaults()
	if c.PlanOptions().NoSecondaryAddresses {
		t.Fatal("defaults plan no secondary addresses; want them assigned")
	}
	c.Interfaces.SecondaryAddresses = false
	if !c.PlanOptions().NoSecondaryAddresses {
		t.Error("secondary_addresses = false: the planner still assigns secondary addresses")
	}
}
