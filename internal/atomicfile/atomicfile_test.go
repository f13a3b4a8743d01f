package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteIfChangedWritesOnlyWhatDiffers(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "sub", "70-ens6.network")
	for i, tc := range []struct {
		content string
		changed bool
	}{{"a\n", true}, {"a\n", false}, {"b\n", true}} {
		changed, err := WriteIfChanged(name, []byte(tc.content))
		if err != nil || changed != tc.changed {
			t.Fatalf("write %d: changed=%v err=%v, want changed=%v", i, changed, err, tc.changed)
		}
		if got, _ := os.ReadFile(name); string(got) != tc.content {
			t.Fatalf("write %d: file holds %q", i, got)
		}
	}
	if err := os.Chmod(name, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, _ := WriteIfChanged(name, []byte("b\n")); !changed {
		t.Errorf("a file with mode 0600 was not rewritten with mode %v", Mode)
	}
	if fi, _ := os.Stat(name); fi.Mode().Perm() != Mode {
		t.Errorf("mode %v, want %v", fi.Mode().Perm(), Mode)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "sub", ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A write killed between CreateTemp and the rename (kill -9 of the agent, issue #14) leaves a
// temporary file; the next start removes it, and only files of that shape.
func TestRemoveStaleRemovesOnlyOurTemporaries(t *testing.T) {
	dir := t.TempDir()
	stale := []string{".70-ens7.network.1234567.tmp", ".ifcfg-eth1.42.tmp", ".eth1.json.9.tmp"}
	kept := []string{"70-ens7.network", ".hidden", ".x.tmp", ".70-ens7.network.abc.tmp", "a.1.tmp", ".user.conf.12.tmp.bak"}
	for _, n := range append(slices.Clone(stale), kept...) {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".d.1.tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, ".d.1.tmp")
	removed, err := RemoveStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range stale {
		want = append(want, filepath.Join(dir, n))
	}
	slices.Sort(want)
	slices.Sort(removed)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, n := range kept {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed", n)
		}
	}
	if removed, err := RemoveStale(filepath.Join(dir, "missing")); err != nil || len(removed) > 0 {
		t.Errorf("missing dir: removed %v, err %v", removed, err)
	}
}

// RemoveStaleOf removes the temporaries of its file only, not those of other files, nor anything
// that merely resembles one.
func TestRemoveStaleOfRemovesOnlyThatFilesTemporaries(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "state.json")
	stale := []string{".state.json.1234567.tmp", ".state.json.9.tmp"}
	kept := []string{"state.json", ".other.json.12.tmp", ".state.json.x.12.tmp", ".state.json..tmp", ".state.json.12.tmp.bak",
		"state.json.12.tmp", ".state.jsonx.12.tmp"}
	for _, n := range append(slices.Clone(stale), kept...) {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveStaleOf(name)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range stale {
		want = append(want, filepath.Join(dir, n))
	}
	slices.Sort(want)
	slices.Sort(removed)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, n := range kept {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed", n)
		}
	}
	if removed, err := RemoveStaleOf(filepath.Join(dir, "missing", "state.json")); err != nil || len(removed) > 0 {
		t.Errorf("missing dir: removed %v, err %v", removed, err)
	}
}

// The name os.CreateTemp gives is one RemoveStale recognises.
func TestTemporaryNamesAreRecognised(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), tempPattern("/x/70-ens7.network"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !isTemp(filepath.Base(f.Name())) {
		t.Errorf("%s not recognised as a temporary file", f.Name())
	}
}
