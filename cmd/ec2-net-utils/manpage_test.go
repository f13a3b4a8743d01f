package main

import (
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const manPage = "../../packaging/man/ec2-net-utils.8"

// TestManPageDocumentsEveryCommandAndFlag keeps ec2-net-utils(8) from drifting from the CLI:
// every command the user can type (the ones cobra adds included) has an entry under COMMANDS,
// every subcommand below them is named, and every flag appears in its roff form (\-\-name).
func TestManPageDocumentsEveryCommandAndFlag(t *testing.T) {
	b, err := os.ReadFile(manPage)
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	root := newRootCommand(io.Discard, io.Discard)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()

	commands := man[strings.Index(man, ".SH COMMANDS"):]
	commands = commands[:strings.Index(commands[1:], ".SH ")+1]
	var walk func(c *cobra.Command, depth int)
	walk = func(c *cobra.Command, depth int) {
		if c.Hidden {
			return
		}
		name := c.Name()
		switch depth {
		case 0:
		case 1:
			entry := regexp.MustCompile(`(?m)^\.TP\n\.BI? ` + regexp.QuoteMeta(name) + `\b`)
			if !entry.MatchString(commands) {
				t.Errorf("%s: command %q has no .TP entry under COMMANDS", manPage, name)
			}
		default:
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`).MatchString(man) {
				t.Errorf("%s: subcommand %q of %q is not named", manPage, name, c.Parent().Name())
			}
		}
		c.InitDefaultHelpFlag()
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden { // for tests and the lab, not users
				return
			}
			roff := `\-\-` + strings.ReplaceAll(f.Name, "-", `\-`)
			if !strings.Contains(man, roff) {
				t.Errorf("%s: flag --%s of %q is not documented (want %q)", manPage, f.Name, c.CommandPath(), roff)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub, depth+1)
		}
	}
	walk(root, 0)
}

func TestCompletionOffersBackendAndLogLevelValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "--backend", ""}, []string{"auto", "networkd", "networkmanager", "ifcfg"}},
		{[]string{"__complete", "plan", "--log-level", ""}, []string{"trace", "debug", "info", "warn", "error"}},
	} {
		code, out, stderr := runCLI(t, c.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, stderr)
		}
		got := strings.Fields(out)
		if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], ":") {
			t.Fatalf("%v: no completion directive in %q", c.args, out)
		}
		if strings.Join(got[:len(got)-1], " ") != strings.Join(c.want, " ") {
			t.Errorf("%v: completions %q, want %q", c.args, got[:len(got)-1], c.want)
		}
	}
}

func TestBashCompletionScriptIsGenerated(t *testing.T) {
	code, out, stderr := runCLI(t, "completion", "bash")
	if code != 0 || !strings.Contains(out, "complete -o default -F __start_ec2-net-utils ec2-net-utils") {
		t.Errorf("completion bash: exit %d, stderr %q; want a bash script registering ec2-net-utils", code, stderr)
	}
}

// TestManPageExitStatusMatchesTheCode keeps EXIT STATUS naming the codes run returns and the
// kinds of wrong call that exit 2.
func TestManPageExitStatusMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile(manPage)
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	section := man[strings.Index(man, ".SH EXIT STATUS"):]
	section = section[:strings.Index(section[1:], ".SH ")+1]
	for _, code := range []int{0, exitFailure, exitUsage} {
		if !regexp.MustCompile(`(?m)^\.TP\n\.B ` + strconv.Itoa(code) + `\n`).MatchString(section) {
			t.Errorf("%s: EXIT STATUS has no entry for %d", manPage, code)
		}
	}
	for _, usage := range []string{"unknown command", "extra argument", "unknown flag", "not a regular file"} {
		if !strings.Contains(section, usage) {
			t.Errorf("%s: EXIT STATUS does not say that %s exits %d", manPage, usage, exitUsage)
		}
	}
}
