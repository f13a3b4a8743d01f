// Package packaging holds no code: its tests check the files the packages install.
package packaging

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// oldest is the oldest systemd the packages support: 219, on Amazon Linux 2 and CentOS 7, where
// the ifcfg backend's users are.
const oldest = 219

// reading says how systemd 219 reads a directive it knows.
type reading int

const (
	// same: 219 reads the values this project uses as the newest systemd does.
	same reading = iota
	// laxIfIgnored: 219 ignores (with a warning) a value it cannot parse and keeps the default,
	// which is no sandboxing: less protection, never a broken service.
	laxIfIgnored
	// modelled: 219 reads it differently in a way that can break the service; evaluate219
	// models 219's parser (load-fragment.c of v219) and compares with the newest reading.
	modelled
)

// directive is one unit-file setting: the systemd version that introduced it (from the
// systemd.unit, systemd.service, systemd.exec, systemd.resource-control and systemd.timer man
// pages' "Added in version" notes and NEWS) and, for those 219 knows, how 219 reads it.
// A directive newer than 219 is unknown there: 219 ignores it with a warning, which is harmless
// unless a setting 219 does know depends on it (see evaluate219).
type directive struct {
	since   int
	reading reading
	// values219, if set, is what 219 accepts; a value outside it is ignored by 219.
	values219 *regexp.Regexp
}

var (
	boolean    = regexp.MustCompile(`^(yes|no|true|false|on|off|1|0)$`)
	directives = map[string]directive{
		// [Unit], [Install]
		"Unit.Description":         {since: 1},
		"Unit.Documentation":       {since: 187},
		"Unit.After":               {since: 1},
		"Unit.Before":              {since: 1},
		"Unit.Wants":               {since: 1},
		"Unit.Requires":            {since: 1},
		"Unit.PartOf":              {since: 193},
		"Unit.BindsTo":             {since: 196},
		"Unit.Conflicts":           {since: 1},
		"Unit.DefaultDependencies": {since: 1, values219: boolean},
		"Unit.ConditionPathExists": {since: 1},
		// The "|" (trigger) prefix is as old as the conditions themselves.
		"Unit.ConditionFileNotEmpty": {since: 188},
		"Unit.StartLimitIntervalSec": {since: 229}, // StartLimitInterval= in [Service] before
		"Install.WantedBy":           {since: 1},
		"Install.Also":               {since: 1},
		// [Service] (systemd.service)
		"Service.Type":                     {since: 1, values219: regexp.MustCompile(`^(simple|forking|oneshot|dbus|notify|idle)$`)},
		"Service.ExecStart":                {since: 1},
		"Service.RemainAfterExit":          {since: 1, values219: boolean},
		"Service.TimeoutStartSec":          {since: 188},
		"Service.Restart":                  {since: 1, values219: regexp.MustCompile(`^(no|on-success|on-failure|on-abnormal|on-watchdog|on-abort|always)$`)},
		"Service.RestartSec":               {since: 1},
		"Service.RestartPreventExitStatus": {since: 189},
		"Service.SuccessExitStatus":        {since: 189},
		// [Service] (systemd.kill)
		"Service.KillMode": {since: 1, values219: regexp.MustCompile(`^(control-group|process|mixed|none)$`)},
		// [Service] (systemd.exec)
		"Service.User":                     {since: 1},
		"Service.UMask":                    {since: 1},
		"Service.NoNewPrivileges":          {since: 187, values219: boolean},
		"Service.CapabilityBoundingSet":    {since: 1, reading: modelled},
		"Service.AmbientCapabilities":      {since: 229},
		"Service.PrivateTmp":               {since: 1, values219: boolean},
		"Service.PrivateDevices":           {since: 209, values219: boolean},
		"Service.ProtectHome":              {since: 214, reading: laxIfIgnored, values219: regexp.MustCompile(`^(yes|no|true|false|on|off|1|0|read-only)$`)},
		"Service.ProtectSystem":            {since: 214, reading: laxIfIgnored, values219: regexp.MustCompile(`^(yes|no|true|false|on|off|1|0|full)$`)},
		"Service.ReadWritePaths":           {since: 231},
		"Service.RuntimeDirectory":         {since: 211},
		"Service.RuntimeDirectoryPreserve": {since: 235},
		"Service.ProtectKernelTunables":    {since: 232},
		"Service.ProtectKernelModules":     {since: 232},
		"Service.ProtectKernelLogs":        {since: 244},
		"Service.ProtectControlGroups":     {since: 232},
		"Service.ProtectClock":             {since: 245},
		"Service.ProtectHostname":          {since: 242},
		"Service.ProtectProc":              {since: 247},
		"Service.ProcSubset":               {since: 247},
		"Service.RestrictAddressFamilies":  {since: 211, values219: regexp.MustCompile(`^~?AF_[A-Z0-9]+( AF_[A-Z0-9]+)*$|^$`)},
		"Service.RestrictNamespaces":       {since: 233},
		"Service.RestrictRealtime":         {since: 231},
		"Service.RestrictSUIDSGID":         {since: 242},
		"Service.LockPersonality":          {since: 235},
		"Service.MemoryDenyWriteExecute":   {since: 231},
		"Service.SystemCallArchitectures":  {since: 209, values219: regexp.MustCompile(`^(native|x86-64|x86|x32|arm64|arm)?$`)},
		"Service.SystemCallFilter":         {since: 187, reading: modelled},
		"Service.SystemCallErrorNumber":    {since: 209, values219: regexp.MustCompile(`^E[A-Z]+$`)},
		// [Service] (systemd.resource-control)
		"Service.IPAddressDeny":  {since: 235},
		"Service.IPAddressAllow": {since: 235},
		// [Timer]
		"Timer.OnActiveSec":       {since: 1},
		"Timer.OnUnitInactiveSec": {since: 1},
	}
)

// assignment is one line of a unit file or drop-in.
type assignment struct {
	file, section, key, value string
	line                      int
}

func (a assignment) String() string {
	return fmt.Sprintf("%s:%d: %s=%s", filepath.Base(a.file), a.line, a.key, a.value)
}

// parseUnit reads the assignments of a unit file, in order. The project's files use no line
// continuations; one would be misread here, so it fails the test.
func parseUnit(t *testing.T, path string) []assignment {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []assignment
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: line continuation: this test does not read them", path, n)
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not key=value: %q", path, n, line)
		}
		out = append(out, assignment{file: path, section: section, key: strings.TrimSpace(k), value: strings.TrimSpace(v), line: n})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// unitDir is where make install puts units, under its DESTDIR.
const unitDir = "usr/lib/systemd/system"

// installed lays out what a package installs (make install, with a stand-in for the binary) and
// returns the root it installed into.
func installed(t *testing.T, withIfcfg bool) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	dest := t.TempDir()
	ifcfg := "0"
	if withIfcfg {
		ifcfg = "1"
	}
	cmd := exec.Command("make", "-s", "-C", "..", "install", "DESTDIR="+dest, "BIN=/bin/true", "WITH_IFCFG="+ifcfg, "VERSION=test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	return dest
}

// units maps every installed unit to its files: the unit, then its drop-ins in name order, the
// order in which systemd applies them.
func units(t *testing.T, root string) map[string][]string {
	t.Helper()
	unitdir := filepath.Join(root, unitDir)
	entries, err := os.ReadDir(unitdir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		files := []string{filepath.Join(unitdir, e.Name())}
		dropins, _ := filepath.Glob(filepath.Join(unitdir, e.Name()+".d", "*.conf"))
		sort.Strings(dropins)
		out[e.Name()] = append(files, dropins...)
	}
	return out
}

// Every directive the installed units use has its minimum systemd version in the table: a new
// directive forces a look at what systemd 219 does with it.
func TestEveryUnitDirectiveHasItsMinimumSystemdVersion(t *testing.T) {
	for _, withIfcfg := range []bool{false, true} {
		for name, files := range units(t, installed(t, withIfcfg)) {
			for _, f := range files {
				for _, a := range parseUnit(t, f) {
					if _, ok := directives[a.section+"."+a.key]; !ok {
						t.Errorf("%s (unit %s): [%s] %s= is not in the table of this test: add it with the systemd version that introduced it and how systemd %d reads it", a, name, a.section, a.key, oldest)
					}
				}
			}
		}
	}
}

// With the ifcfg drop-in (installed on Amazon Linux 2 and EL < 9), every unit starts on systemd
// 219 with nothing misread into a harmful state.
func TestUnitsWithIfcfgDropInAreSafeOnSystemd219(t *testing.T) {
	for name, files := range units(t, installed(t, true)) {
		var all []assignment
		for _, f := range files {
			all = append(all, parseUnit(t, f)...)
		}
		for _, p := range evaluate219(all) {
			t.Errorf("%s on systemd %d: %s", name, oldest, p)
		}
	}
}

// The model catches the trap the ifcfg drop-in works around: the unit alone, on systemd 219,
// is an allow list of system calls made of group names 219 skips.
func TestSystemd219ModelFindsTheGroupNameAllowList(t *testing.T) {
	problems := evaluate219(parseUnit(t, filepath.Join(installed(t, false), unitDir, "ec2-net-utils.service")))
	if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "SystemCallFilter") }) {
		t.Fatalf("the unit alone should be flagged for its SystemCallFilter= allow list on 219; problems: %q", problems)
	}
}

func TestSystemd219Model(t *testing.T) {
	a := func(key, value string) assignment {
		return assignment{file: "x.service", section: "Service", key: key, value: value}
	}
	for _, tc := range []struct {
		name    string
		in      []assignment
		harmful bool
	}{
		{"allow list of groups", []assignment{a("SystemCallFilter", "@system-service")}, true},
		{"allow list of groups, then a deny list", []assignment{a("SystemCallFilter", "@system-service"), a("SystemCallFilter", "~@privileged")}, true},
		{"allow list reset", []assignment{a("SystemCallFilter", "@system-service"), a("SystemCallFilter", "")}, false},
		{"deny list of groups", []assignment{a("SystemCallFilter", "~@mount @reboot")}, false},
		{"allow list of names", []assignment{a("SystemCallFilter", "read write")}, false},
		{"bounding set widened by a second line", []assignment{a("CapabilityBoundingSet", "CAP_NET_ADMIN"), a("CapabilityBoundingSet", "CAP_NET_ADMIN CAP_NET_RAW")}, true},
		{"bounding set narrowed by a second line", []assignment{a("CapabilityBoundingSet", "CAP_NET_ADMIN CAP_NET_RAW"), a("CapabilityBoundingSet", "CAP_NET_ADMIN")}, true},
		{"bounding set repeated", []assignment{a("CapabilityBoundingSet", "CAP_NET_ADMIN CAP_NET_RAW"), a("CapabilityBoundingSet", "CAP_NET_RAW CAP_NET_ADMIN")}, false},
		{"bounding set emptied, then set", []assignment{a("CapabilityBoundingSet", ""), a("CapabilityBoundingSet", "CAP_NET_ADMIN")}, true},
		{"ambient capabilities for root", []assignment{a("AmbientCapabilities", "CAP_NET_ADMIN")}, false},
		{"ambient capabilities for a user", []assignment{a("User", "ec2net"), a("AmbientCapabilities", "CAP_NET_ADMIN")}, true},
		{"ProtectSystem=strict", []assignment{a("ProtectSystem", "strict")}, false},
		{"KillMode 219 cannot read", []assignment{a("KillMode", "control-group-v2")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := evaluate219(tc.in)
			if (len(p) > 0) != tc.harmful {
				t.Fatalf("harmful = %v, want %v: %q", len(p) > 0, tc.harmful, p)
			}
		})
	}
}

// evaluate219 returns what systemd 219 would make of a unit's assignments (unit file, then
// drop-ins) that breaks the service. Ignored directives and ignored sandbox values only weaken
// the sandbox; they are fine. Harmful: a value 219 cannot read for a setting that is not a
// sandbox knob, a system call allow list that lost names 219 does not know, a capability bounding
// set smaller than the newest systemd's, and ambient capabilities (unknown to 219) that a non-root
// User= would need.
func evaluate219(as []assignment) []string {
	var problems []string
	// System calls: 219 skips @group names (and names its libseccomp does not know). In an allow
	// list, each skipped name is a system call the service loses.
	type filter struct {
		allow   bool
		set     bool
		skipped []string
	}
	var sc filter
	// Capabilities: 219 intersects every line (an empty one drops all); the newest systemd
	// merges lines and resets on an empty one. nil caps219: no line yet, every capability.
	var capsSet bool
	var caps219, capsNew map[string]bool
	user := ""
	var ambient *assignment
	for _, a := range as {
		key := a.section + "." + a.key
		d, ok := directives[key]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: not in the directive table", a))
			continue
		}
		if d.since > oldest {
			if key == "Service.AmbientCapabilities" {
				a := a
				ambient = &a
			}
			continue // ignored with a warning
		}
		switch key {
		case "Service.User":
			user = a.value
		case "Service.SystemCallFilter":
			if a.value == "" {
				sc = filter{}
				continue
			}
			v, deny := strings.CutPrefix(a.value, "~")
			if !sc.set {
				sc = filter{allow: !deny, set: true}
			}
			for _, name := range strings.Fields(v) {
				if strings.HasPrefix(name, "@") && sc.allow && !deny {
					sc.skipped = append(sc.skipped, name)
				}
			}
		case "Service.CapabilityBoundingSet":
			if strings.HasPrefix(a.value, "~") {
				problems = append(problems, fmt.Sprintf("%s: an inverted bounding set is not modelled by this test", a))
				continue
			}
			line := map[string]bool{}
			for _, c := range strings.Fields(a.value) {
				line[c] = true
			}
			if !capsSet {
				capsSet, capsNew = true, map[string]bool{}
			}
			if a.value == "" {
				capsNew = map[string]bool{}
			}
			for c := range line {
				capsNew[c] = true
			}
			// 219: drop |= ^line, so the set kept is the intersection of all lines.
			if caps219 == nil {
				caps219 = line
			} else {
				for c := range caps219 {
					if !line[c] {
						delete(caps219, c)
					}
				}
			}
		default:
			if d.reading == same && d.values219 != nil && !d.values219.MatchString(a.value) {
				problems = append(problems, fmt.Sprintf("%s: systemd %d cannot read this value and ignores the line; reset or change it in a drop-in", a, oldest))
			}
		}
	}
	if sc.set && sc.allow && len(sc.skipped) > 0 {
		problems = append(problems, fmt.Sprintf("SystemCallFilter= is an allow list and systemd %d skips %s: the service may call almost nothing (reset it with an empty SystemCallFilter= and use a deny list)", oldest, strings.Join(sc.skipped, " ")))
	}
	if capsSet {
		var lost []string
		for c := range capsNew {
			if !caps219[c] {
				lost = append(lost, c)
			}
		}
		if len(lost) > 0 {
			sort.Strings(lost)
			problems = append(problems, fmt.Sprintf("CapabilityBoundingSet=: systemd %d intersects repeated lines and lacks %s; give the unit one line with the whole set", oldest, strings.Join(lost, " ")))
		}
	}
	if ambient != nil && user != "" && user != "root" {
		problems = append(problems, fmt.Sprintf("%s: systemd %d ignores AmbientCapabilities=, and User=%s then runs without capabilities", *ambient, oldest, user))
	}
	return problems
}
