package ifcfg

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// goldenFiles returns the distinct files of the golden tests whose names start with prefix
// (ifcfg-, route-, ...), as the agent writes them.
func goldenFiles(f *testing.F, prefix string) [][]byte {
	var out [][]byte
	seen := map[string]bool{}
	err := filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), prefix) {
			return err
		}
		b, err := os.ReadFile(path)
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, b)
		}
		return err
	})
	if err != nil || len(out) == 0 {
		f.Fatalf("no golden files: %v", err)
	}
	return out
}

var knobSpellings = []string{"", "no", "yes", `"no"`, "'yes' # kept", "off", "1"}

// FuzzParseKnobs: any ifcfg file parses without panic, and knobs appended at its end win, as
// the shell's last assignment does, whatever comes before them (a line longer than bufio's
// 64 KiB token limit included).
func FuzzParseKnobs(f *testing.F) {
	for _, b := range goldenFiles(f, "ifcfg-") {
		f.Add(b, uint8(1), uint8(2), uint8(0))
	}
	f.Add([]byte("# "+strings.Repeat("x", 70_000)+"\nEC2SYNC=yes\n"), uint8(1), uint8(0), uint8(0))
	f.Add([]byte("EC2SYNC=\"no\nMAINROUTETABLE='yes"), uint8(0), uint8(3), uint8(6))
	f.Fuzz(func(t *testing.T, content []byte, sync, main, pfx uint8) {
		_ = ParseKnobs(content).Describe()
		var appended bytes.Buffer
		appended.Write(content)
		want := map[string]*bool{}
		for key, v := range map[string]uint8{"EC2SYNC": sync, "MAINROUTETABLE": main, "EC2PROVISIONPFXIPS": pfx} {
			spelling := knobSpellings[int(v)%len(knobSpellings)]
			if spelling == "" {
				continue
			}
			b, _ := parseBool(shellValue(spelling))
			want[key] = &b
			appended.WriteString("\n" + key + "=" + spelling)
		}
		got := ParseKnobs(appended.Bytes())
		for key, w := range want {
			if g := *knobKeys[key](&got); g == nil || *g != *w {
				t.Fatalf("%s appended as %v reads as %v", key, *w, g)
			}
		}
	})
}

// FuzzOwnership: any file's header reads without panic; a file the agent wrote reads as
// generated for its interface; changing one byte of its body makes it edited.
func FuzzOwnership(f *testing.F) {
	for _, b := range append(goldenFiles(f, "ifcfg-"), goldenFiles(f, "rule")...) {
		f.Add(b, "eth1", "DEVICE=eth1\nBOOTPROTO=dhcp", uint16(3))
	}
	f.Fuzz(func(t *testing.T, content []byte, iface, body string, flip uint16) {
		_, _ = Ownership(content)

		if iface == "" || strings.ContainsAny(iface, " \n") {
			return
		}
		file := withHeader(core.InterfacePlan{Name: iface, MAC: "02:00:00:00:06:06"}, strings.Split(body, "\n"))
		if owner, got := Ownership(file); owner != Generated || got != iface {
			t.Fatalf("a generated file reads as %v for %q", owner, got)
		}
		i := len(file) - 1 - int(flip)%len(file)
		edited := bytes.Clone(file)
		edited[i] ^= 0x01
		if owner, _ := Ownership(edited); owner == Generated {
			t.Fatalf("byte %d changed, still generated:\n%s", i, edited)
		}
	})
}
