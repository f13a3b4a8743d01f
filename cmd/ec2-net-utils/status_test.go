package main

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/reconcile"
	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// The daemon rewrites its state file only when what it says changes, not at every refresh.
func TestDaemonStateIsWrittenOnlyWhenItChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	clock := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	w := &stateWriter{path: path, now: func() time.Time { return clock }, log: hclog.NewNullLogger(),
		state: daemonState{PID: os.Getpid(), IMDSAnswering: true, IMDSSince: clock}}
	writes := 0
	mtime := func() {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(w.last)+"\n" {
			t.Fatal("file and last write differ")
		}
	}
	step := func(name string, f func(), wantWrite bool) {
		t.Helper()
		before := string(w.last)
		clock = clock.Add(10 * time.Second)
		f()
		if wrote := string(w.last) != before; wrote != wantWrite {
			t.Errorf("%s: wrote %v, want %v", name, wrote, wantWrite)
		} else if wrote {
			writes++
			mtime()
		}
	}
	changed := reconcile.Result{Report: core.Report{Changes: core.Changes{Written: []string{"70-ens6.network"}, Reloads: 1}}}
	step("first pass", func() { w.onPass(reconcile.Pass{Reason: "start", Fetch: true}, reconcile.Result{}, nil) }, true)
	step("ready", w.ready, true)
	step("a refresh that changes nothing", func() { w.onPass(reconcile.Pass{Reason: "refresh", Fetch: true}, reconcile.Result{}, nil) }, false)
	step("an attach", func() { w.onPass(reconcile.Pass{Reason: "link added ens6", Fetch: true}, changed, nil) }, true)
	step("another quiet refresh", func() { w.onPass(reconcile.Pass{Reason: "refresh", Fetch: true}, reconcile.Result{}, nil) }, false)
	step("IMDS goes away", func() {
		w.onPass(reconcile.Pass{Reason: "refresh", Fetch: true}, reconcile.Result{IMDSUnreachable: true}, errors.New("imds: timeout"))
	}, true)
	step("IMDS still away, same error", func() {
		w.onPass(reconcile.Pass{Reason: "refresh", Fetch: true}, reconcile.Result{IMDSUnreachable: true}, errors.New("imds: timeout"))
	}, false)
	step("IMDS back", func() { w.onPass(reconcile.Pass{Reason: "refresh", Fetch: true}, reconcile.Result{}, nil) }, true)

	st, running, err := readDaemonState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !running || !st.Ready || !st.IMDSAnswering || st.LastChange.Reason != "link added ens6" || st.LastError.Error != "imds: timeout" {
		t.Errorf("read back running %v, state %+v", running, st)
	}
}

// A daemon killed while writing its state leaves a temporary file in the RuntimeDirectory, which
// survives restarts: the next daemon removes it at start, and nothing else of the directory.
func TestDaemonStartRemovesTheTemporaryStateFileOfAKilledWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	stale := filepath.Join(dir, ".state.json.2318563.tmp")
	kept := []string{path, filepath.Join(dir, ".other.conf.42.tmp"), filepath.Join(dir, "notes.txt")}
	for _, f := range append([]string{stale}, kept...) {
		if err := os.WriteFile(f, []byte("{"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	newStateWriter(path, &agent{log: hclog.NewNullLogger()}, time.Now)
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left at start: %v", stale, err)
	}
	for _, f := range kept {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("%s removed at start: %v", f, err)
		}
	}
}

func TestDaemonStateOfAProcessThatIsGoneIsNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"pid": 999999999}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, running, err := readDaemonState(path); err != nil || running {
		t.Errorf("running %v, %v; want not running", running, err)
	}
	if _, running, err := readDaemonState(filepath.Join(t.TempDir(), "none")); err != nil || running {
		t.Errorf("no file: running %v, %v; want not running", running, err)
	}
}

// Without the daemon, status still compares (here: both ENIs pending, their MACs are on no
// local link), says the daemon does not run, and exits 3.
func TestStatusWithoutTheDaemon(t *testing.T) {
	sc, err := scenario.Load("../../testdata/scenarios/primary-and-secondary.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fakeimds.New(sc))
	defer srv.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "ec2-net-utils.conf")
	if err := os.WriteFile(conf, []byte("backend = \"networkd\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", conf, "--imds-endpoint", srv.URL, "--state-file", filepath.Join(dir, "state.json")}
	code, out, stderr := runCLI(t, append([]string{"status", "--json"}, args...)...)
	if code != exitNotOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want %d and nothing on stderr", code, stderr, exitNotOK)
	}
	var doc struct {
		Daemon  struct{ Running bool } `json:"daemon"`
		Backend string                 `json:"backend"`
		ENIs    []json.RawMessage      `json:"enis"`
		Pending []struct{ MAC string } `json:"pending"`
		OK      bool                   `json:"ok"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if doc.Daemon.Running || doc.Backend != "networkd" || len(doc.ENIs) != 0 || len(doc.Pending) != 2 || !doc.OK {
		t.Errorf("got %+v; want daemon not running, networkd, no ENI, 2 pending, comparison ok", doc)
	}
	code, out, _ = runCLI(t, append([]string{"status"}, args...)...)
	if code != exitNotOK || !strings.Contains(out, "daemon:  NOT RUNNING") || !strings.Contains(out, "pending (not configured yet):") {
		t.Errorf("exit %d, text:\n%s", code, out)
	}
}
