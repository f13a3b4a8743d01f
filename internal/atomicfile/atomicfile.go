// Package atomicfile writes configuration files the way a reader (a network manager, or anyone
// after a crash) sees either the old bytes or the new ones, never a mix, and cleans up what a
// crash in the middle of a write leaves behind.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Mode is the permission of every file written: world-readable configuration.
const Mode fs.FileMode = 0o644

// tempPattern names a file's temporary sibling: it starts with a dot and ends in .tmp, so no
// manager's glob (*.network, *.conf, ifcfg-*) loads it, and RemoveStale knows it for ours.
func tempPattern(name string) string { return "." + filepath.Base(name) + ".*.tmp" }

// Differs reports whether name is not a regular file with mode Mode holding exactly content,
// that is, whether WriteIfChanged would write it.
func Differs(name string, content []byte) bool {
	fi, err := os.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != Mode {
		return true
	}
	old, err := os.ReadFile(name)
	return err != nil || string(old) != string(content)
}

// WriteIfChanged writes content to name unless Differs says it is there already. changed is
// true once the new bytes are in place, even when the error that follows (syncing the directory)
// says the rename may not survive a power loss.
func WriteIfChanged(name string, content []byte) (changed bool, err error) {
	if !Differs(name, content) {
		return false, nil
	}
	return Write(name, content)
}

// Write replaces name with content: a temporary file next to it, synced, renamed over it, the
// directory synced. renamed reports whether the new bytes replaced the old ones (true with an
// error means only the directory sync failed).
func Write(name string, content []byte) (renamed bool, err error) {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, tempPattern(name))
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil && !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(content); err != nil {
		return false, err
	}
	if err = tmp.Chmod(Mode); err != nil {
		return false, err
	}
	if err = tmp.Sync(); err != nil {
		return false, err
	}
	if err = tmp.Close(); err != nil {
		return false, err
	}
	if err = os.Rename(tmp.Name(), name); err != nil {
		return false, err
	}
	return true, syncDir(dir)
}

// syncDir makes a rename durable on a persistent file system.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RemoveStale removes the temporary files a write killed midway (kill -9, power loss) left in
// dir: regular files named like Write's temporaries (".<name>.<digits>.tmp") and nothing else.
// It returns the paths it removed. A missing dir has nothing stale.
func RemoveStale(dir string) ([]string, error) {
	return removeStale(dir, isTemp)
}

// RemoveStaleOf is RemoveStale for the temporaries of one file only (".<base of name>.<digits>.tmp"
// next to it): for a file in a directory the agent shares with others, whose temporaries of their
// own may look like ours.
func RemoveStaleOf(name string) ([]string, error) {
	base := filepath.Base(name)
	return removeStale(filepath.Dir(name), func(file string) bool {
		rest, ok := strings.CutPrefix(file, "."+base+".")
		if !ok {
			return false
		}
		digits, ok := strings.CutSuffix(rest, ".tmp")
		return ok && allDigits(digits)
	})
}

func removeStale(dir string, ours func(name string) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("atomicfile: list %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !ours(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("atomicfile: remove stale %s: %w", path, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// isTemp reports whether a file name is one of Write's temporaries: os.CreateTemp replaces the
// "*" of tempPattern with decimal digits.
func isTemp(name string) bool {
	rest, ok := strings.CutPrefix(name, ".")
	if !ok {
		return false
	}
	rest, ok = strings.CutSuffix(rest, ".tmp")
	if !ok {
		return false
	}
	i := strings.LastIndexByte(rest, '.')
	return i > 0 && allDigits(rest[i+1:])
}

// allDigits reports whether s is a non-empty run of decimal digits: what os.CreateTemp puts in
// place of tempPattern's "*".
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
