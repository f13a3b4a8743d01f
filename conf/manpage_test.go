package conf

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const manPage = "../packaging/man/ec2-net-utils.conf.5"

// TestManPageDocumentsEveryKeyWithItsDefault keeps ec2-net-utils.conf(5) from drifting: every key
// of Config appears exactly once, as "\fBkey\fR = default" under its ".SS [table]", no other key
// is documented, and the documented defaults, read as a configuration file, are Defaults().
func TestManPageDocumentsEveryKeyWithItsDefault(t *testing.T) {
	b, err := os.ReadFile(manPage)
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`^\\fB([a-z_]+)\\fR = (.+)$`)
	table := regexp.MustCompile(`^\.SS \[([a-z_]+)\]$`)
	prefix := ""
	seen := map[string]int{}
	var asTOML []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if m := table.FindStringSubmatch(line); m != nil {
			prefix = m[1] + "."
			asTOML = append(asTOML, "["+m[1]+"]")
			continue
		}
		if m := entry.FindStringSubmatch(line); m != nil {
			seen[prefix+m[1]]++
			asTOML = append(asTOML, m[1]+" = "+m[2])
		}
	}

	for _, f := range newSchema().fields {
		if n := seen[f.key]; n != 1 {
			t.Errorf("key %s appears %d times in %s, want once", f.key, n, manPage)
		}
		delete(seen, f.key)
	}
	for key := range seen {
		t.Errorf("%s documents %s, which is not a key", manPage, key)
	}

	got, err := Load(writeConf(t, strings.Join(asTOML, "\n")), true, nil)
	if err != nil {
		t.Fatalf("the defaults in %s do not load: %v", manPage, err)
	}
	if diff := cmp.Diff(Defaults(), got); diff != "" {
		t.Errorf("defaults in %s differ from Defaults() (-code +man page):\n%s", manPage, diff)
	}
}
