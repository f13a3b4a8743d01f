package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/reconcile"
	"github.com/ec2-net-utils/ec2-net-utils/internal/atomicfile"
)

// stateFile is where the daemon publishes its state for `ec2-net-utils status`: in the unit's
// RuntimeDirectory, so it exists only under systemd (a daemon started by hand or in the lab
// writes nothing unless given --state-file).
const stateFile = "/run/ec2-net-utils/state.json"

// daemonState is the daemon's state file. It changes only when something worth reading does (a
// pass that changed the host or failed, IMDS going away or coming back), not at every refresh,
// so the file is rewritten rarely.
type daemonState struct {
	PID          int       `json:"pid"`
	Version      string    `json:"version"`
	Backend      string    `json:"backend"`
	Started      time.Time `json:"started"`
	IMDSEndpoint string    `json:"imds_endpoint"`
	// Ready: the first pass is done (systemd was told READY=1).
	Ready bool `json:"ready"`
	// LastChange is the last pass that changed something (the first pass when none did).
	LastChange *passInfo `json:"last_change,omitempty"`
	// LastError is the last pass that failed (the first of a run of identical failures).
	LastError *passInfo `json:"last_error,omitempty"`
	// IMDSAnswering: the last pass that asked IMDS got answers; since IMDSSince.
	IMDSAnswering bool      `json:"imds_answering"`
	IMDSSince     time.Time `json:"imds_since"`
}

type passInfo struct {
	At      time.Time    `json:"at"`
	Reason  string       `json:"reason"`
	Changes core.Changes `json:"changes"`
	Error   string       `json:"error,omitempty"`
}

// stateWriter keeps daemonState and writes it atomically when it changes.
type stateWriter struct {
	path  string
	state daemonState
	last  []byte
	now   func() time.Time
	log   hclog.Logger
}

// newStateWriter is the daemon's, made once at its start. It first removes the temporary files
// of a write the previous daemon was killed in (kill -9, OOM): the RuntimeDirectory outlives
// restarts (RuntimeDirectoryPreserve), so nothing else would.
func newStateWriter(path string, a *agent, now func() time.Time) *stateWriter {
	t := now()
	w := &stateWriter{path: path, now: now, log: a.log, state: daemonState{
		PID: os.Getpid(), Version: version, Backend: a.selection.Name(), Started: t,
		IMDSEndpoint: imdsEndpoint(a.cfg.IMDS.Endpoint), IMDSAnswering: true, IMDSSince: t,
	}}
	w.removeStale()
	return w
}

// removeStale removes the state file's own temporaries only: --state-file may name a file in a
// directory shared with others (/tmp in the lab), whose temporaries may look like ours.
func (w *stateWriter) removeStale() {
	if w.path == "" {
		return
	}
	removed, err := atomicfile.RemoveStaleOf(w.path)
	if err != nil {
		w.log.Warn("cannot remove temporary files of an interrupted write of the daemon state", "error", err)
	}
	for _, f := range removed {
		w.log.Info("removed temporary file of an interrupted write", "file", f)
	}
}

// imdsEndpoint is the endpoint the IMDS client uses, for humans.
func imdsEndpoint(configured string) string {
	if configured != "" {
		return configured
	}
	if env := os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"); env != "" {
		return env
	}
	return "http://169.254.169.254"
}

// ready records the first pass's end.
func (w *stateWriter) ready() {
	w.state.Ready = true
	w.write()
}

// onPass is the reconcile loop's LoopOptions.OnPass.
func (w *stateWriter) onPass(p reconcile.Pass, res reconcile.Result, err error) {
	t := w.now()
	if res.Report.Changes.Changed() || w.state.LastChange == nil {
		w.state.LastChange = &passInfo{At: t, Reason: p.Reason, Changes: res.Report.Changes}
	}
	// The same error again (IMDS down for an hour) keeps the time it first happened: the file
	// would otherwise be rewritten at every refresh.
	if err != nil && (w.state.LastError == nil || w.state.LastError.Error != err.Error() || w.state.LastError.Reason != p.Reason) {
		w.state.LastError = &passInfo{At: t, Reason: p.Reason, Changes: res.Report.Changes, Error: err.Error()}
	}
	if p.Fetch && w.state.IMDSAnswering == res.IMDSUnreachable {
		w.state.IMDSAnswering, w.state.IMDSSince = !res.IMDSUnreachable, t
	}
	w.write()
}

func (w *stateWriter) write() {
	if w.path == "" {
		return
	}
	b, err := json.MarshalIndent(w.state, "", "  ")
	if err != nil || string(b) == string(w.last) {
		return
	}
	if _, err := os.Stat(filepath.Dir(w.path)); err != nil {
		return // not under systemd: no RuntimeDirectory, nothing to publish to
	}
	if _, err := atomicfile.WriteIfChanged(w.path, append(b, '\n')); err != nil {
		w.log.Warn("cannot publish the daemon's state for ec2-net-utils status", "error", err)
		return
	}
	w.last = b
}

// readDaemonState reads the state file and says whether the daemon that wrote it still runs.
// A missing file is a daemon that does not run (or never finished starting).
func readDaemonState(path string) (st daemonState, running bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return daemonState{}, false, nil
	}
	if err != nil {
		return daemonState{}, false, fmt.Errorf("daemon state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return daemonState{}, false, fmt.Errorf("daemon state %s: %w", path, err)
	}
	return st, processIs(st.PID, "ec2-net-utils"), nil
}

// processIs reports whether pid runs a program whose name starts with name (a pid reused by
// another program is not the daemon; the kernel cuts names to 15 bytes).
func processIs(pid int, name string) bool {
	if pid <= 0 {
		return false
	}
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return err == nil && strings.HasPrefix(strings.TrimSpace(string(comm)), name)
}
