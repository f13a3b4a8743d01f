package networkd

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

func outcomes(rep core.Report) map[string]core.Outcome {
	out := map[string]core.Outcome{}
	for _, ir := range rep.Interfaces {
		out[ir.Name] = ir.Outcome
	}
	return out
}

// TestAnInterfaceWhoseActiveFileIsUnknownFailsAndTheOtherIsConfigured: networkd's state of ens6
// cannot be read, so its files are not written (they might strip our drop-ins from the file that
// is active); ens5 goes on.
func TestAnInterfaceWhoseActiveFileIsUnknownFailsAndTheOtherIsConfigured(t *testing.T) {
	f := newFixture(t)
	plan, links := twoENIs()
	if err := os.Mkdir(filepath.Join(f.state, strconv.Itoa(ens6.Index)), 0o755); err != nil {
		t.Fatal(err)
	}
	rep, err := f.backend.Apply(context.Background(), plan, links)
	if err == nil {
		t.Fatal("Apply succeeded without knowing ens6's active file")
	}
	if diff := cmp.Diff(map[string]core.Outcome{"ens5": core.Configured, "ens6": core.Failed}, outcomes(rep)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if ir, _ := rep.Outcome(ens6.MAC); ir.Err == nil {
		t.Error("ens6 failed without its error")
	}
	if rep.Settled(plan) {
		t.Error("a pass with a failed interface is reported settled")
	}
}

// The actions a plan and the files on disk lead to, the same in a dry run as in a real one.
func TestActionsForAPlanAndTheFilesOnDisk(t *testing.T) {
	plan, links := twoENIs()
	file := func(rel string) string { return "%DIR%/" + rel }
	// Render's order: the .network file, then eni.conf, the policies, the aliases.
	var writeAll []string
	for _, rel := range []string{"70-ens5.network", "70-ens5.network.d/eni.conf", "70-ens5.network.d/ec2net_alias.conf",
		"70-ens6.network", "70-ens6.network.d/eni.conf", "70-ens6.network.d/ec2net_policy_4.conf",
		"70-ens6.network.d/ec2net_policy_6.conf", "70-ens6.network.d/ec2net_alias.conf"} {
		writeAll = append(writeAll, "write "+file(rel))
	}
	for _, tc := range []struct {
		name    string
		before  func(f *fixture)
		plan    func(p *core.Plan)
		links   []core.Link
		actions []string
	}{
		{name: "first apply", actions: append(slices.Clone(writeAll), "reload systemd-networkd")},
		{name: "nothing changed", before: func(f *fixture) { f.apply(t, plan, links) }},
		{
			name:   "last secondary address unassigned",
			before: func(f *fixture) { f.apply(t, plan, links) },
			plan:   func(p *core.Plan) { p.Interfaces[1].Addresses = nil },
			actions: []string{"remove " + file("70-ens6.network.d/ec2net_alias.conf"),
				"remove-if-empty " + file("70-ens6.network.d"), "reload systemd-networkd"},
		},
		{
			name:   "ens6 detached: its files go, no reload",
			before: func(f *fixture) { f.apply(t, plan, links) },
			plan:   func(p *core.Plan) { p.Interfaces = p.Interfaces[:1] },
			links:  links[:1],
			actions: []string{
				"remove " + file("70-ens6.network"), "remove " + file("70-ens6.network.d/eni.conf"),
				"remove " + file("70-ens6.network.d/ec2net_policy_4.conf"), "remove " + file("70-ens6.network.d/ec2net_policy_6.conf"),
				"remove " + file("70-ens6.network.d/ec2net_alias.conf"), "remove-if-empty " + file("70-ens6.network.d"),
			},
		},
	} {
		for _, dry := range []bool{true, false} {
			f := newFixture(t)
			if tc.before != nil {
				tc.before(f)
			}
			p := core.Plan{Interfaces: slices.Clone(plan.Interfaces)}
			if tc.plan != nil {
				tc.plan(&p)
			}
			l := links
			if tc.links != nil {
				l = tc.links
			}
			b := New(Options{Dir: f.dir, StateDir: f.state, Reloader: f.reloader, DryRun: dry})
			if _, err := b.Apply(context.Background(), p, l); err != nil {
				t.Fatalf("%s (dry run %v): %v", tc.name, dry, err)
			}
			var got []string
			for _, a := range b.Actions() {
				got = append(got, replaceDir(a, f.dir))
			}
			if diff := cmp.Diff(tc.actions, got); diff != "" {
				t.Errorf("%s (dry run %v): actions (-want +got):\n%s", tc.name, dry, diff)
			}
		}
	}
}

func replaceDir(s, dir string) string { return strings.Replace(s, dir, "%DIR%", 1) }

// Issue #14: kill -9 during a write left .70-ens7.network.<n>.tmp in the directory for good. The
// first Apply after a start removes the temporary files of ours, and nothing else.
func TestTemporaryFilesOfAKilledWriteAreRemovedAtStart(t *testing.T) {
	f := newFixture(t)
	stale := []string{".70-ens7.network.2511443.tmp", "70-ens6.network.d/.eni.conf.77.tmp"}
	theirs := []string{".70-ens7.network.swp", "10-netplan-ens5.network"}
	for _, rel := range append(slices.Clone(stale), theirs...) {
		p := filepath.Join(f.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plan, links := twoENIs()
	f.apply(t, plan, links)
	files := tree(t, f.dir)
	for _, rel := range stale {
		if _, ok := files[rel]; ok {
			t.Errorf("%s is still there", rel)
		}
	}
	for _, rel := range theirs {
		if _, ok := files[rel]; !ok {
			t.Errorf("%s, not ours, was removed", rel)
		}
	}
}
