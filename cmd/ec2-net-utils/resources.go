package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// resources are the daemon's counts a leak would grow: goroutines (only the daemon itself can
// count them), open file descriptors and OS threads. The daemon logs them at debug level at every
// full pass ("resources: goroutines=N fds=N threads=N"); status shows the fds and threads of the
// running daemon, read from /proc.
type resources struct {
	Goroutines int `json:"goroutines,omitempty"`
	FDs        int `json:"fds"`
	Threads    int `json:"threads"`
}

// ownResources counts this process's resources.
func ownResources() (resources, error) {
	r, err := processResources("self")
	r.Goroutines = runtime.NumGoroutine()
	return r, err
}

// processResources counts the fds and threads of a process ("self" or a pid) from /proc.
func processResources(pid string) (resources, error) {
	var r resources
	dir := filepath.Join("/proc", pid)
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return r, fmt.Errorf("count fds: %w", err)
	}
	r.FDs = len(fds)
	if pid == "self" {
		r.FDs-- // the descriptor ReadDir itself had open on the directory
	}
	f, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return r, fmt.Errorf("count threads: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Threads:"); ok {
			r.Threads, err = strconv.Atoi(strings.TrimSpace(v))
			return r, err
		}
	}
	return r, fmt.Errorf("count threads: no Threads line in %s/status", dir)
}
