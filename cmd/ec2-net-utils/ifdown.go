package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// ifdownDir holds one empty file per interface that ec2ifdown (the command of ec2-net-utils 1.x,
// kept for runbooks) took away from the agent; ec2ifup deletes it. The agent adds these names to
// [interfaces] exclude when it loads its configuration, and leaves the interfaces alone. Under
// /run, so that a reboot brings every ENI back, as after 1.x's ifdown. Not in the unit's
// RuntimeDirectory: systemd 219 deletes that at every stop, and ec2ifdown restarts the daemon.
const ifdownDir = "/run/ec2-net-utils-ifdown"

// ifdownExcludes returns the interfaces taken down with ec2ifdown, in name order; none when the
// directory does not exist.
func ifdownExcludes(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("interfaces taken down with ec2ifdown: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}
