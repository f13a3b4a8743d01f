package networkd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// DefaultStateDir is where networkd keeps one state file per link, named by ifindex.
const DefaultStateDir = "/run/systemd/netif/links"

// NetworkFiles tells which .network file networkd applies to a link.
type NetworkFiles interface {
	// NetworkFile returns the path networkd reports for the link, or "" when it reports none
	// (link unknown, unmanaged, or not configured yet).
	NetworkFile(ifindex int) (string, error)
}

// StateDir reads networkd's link state files (/run/systemd/netif/links/<ifindex>), whose
// NETWORK_FILE= key names the .network file applied to the link.
type StateDir string

// NetworkFile implements NetworkFiles.
func (d StateDir) NetworkFile(ifindex int) (string, error) {
	name := filepath.Join(string(d), strconv.Itoa(ifindex))
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("networkd: read link state: %w", err)
	}
	return stateValue(data, "NETWORK_FILE"), nil
}

// stateValue returns the value of key in an env-style state file ("" when absent).
func stateValue(data []byte, key string) string {
	// Not bufio.Scanner: it stops at a line longer than 64 KiB (a long DNS= list), and
	// NETWORK_FILE= after it would read as absent (found by FuzzStateValue).
	for b := range bytes.Lines(data) {
		line := strings.TrimSpace(string(b))
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		return v
	}
	return ""
}

// ErrSharedNetworkFile is reported for an ENI whose active .network file networkd also applies
// to other links. The agent's drop-ins would then route those links through the ENI's table,
// so it writes its own 70- file instead, which networkd ignores while the shared file sorts
// first. A human has to narrow the shared file's [Match] (or let ours sort first).
var ErrSharedNetworkFile = errors.New("active .network file is shared with other links")

// activeFile decides where an ENI's drop-ins go from the file networkd reports for it.
// reported maps each known link's ifindex to its reported file. The second result is non-nil
// when the reported file cannot safely take our drop-ins.
func activeFile(p core.InterfacePlan, reported map[int]string, names map[int]string, dir string) (ActiveFile, error) {
	file := reported[p.Index]
	if file == "" || p.Index == 0 || isOurs(p.Name, file, dir) {
		return ActiveFile{}, nil
	}
	var sharers []string
	for idx, f := range reported {
		if idx != p.Index && f == file {
			sharers = append(sharers, names[idx])
		}
	}
	if len(sharers) > 0 {
		slices.Sort(sharers)
		return ActiveFile{}, fmt.Errorf("%w: %s also configures %s", ErrSharedNetworkFile, file, strings.Join(sharers, ", "))
	}
	return ActiveFile{Path: file}, nil
}

// isOurs reports whether networkd configures the link through a file the agent provides: its
// own 70- file (or a user's /etc override of it, whose drop-in directory is the same), the
// packaged base that matches ENIs until they are configured (drop-ins for it would reach every
// ENI), or a 2.x symlink to that base, which Apply replaces.
func isOurs(iface, file, dir string) bool {
	base := filepath.Base(file)
	if base == NetworkFileName(iface) || base == BaseNetworkFile {
		return true
	}
	if filepath.Dir(file) != filepath.Clean(dir) {
		return false
	}
	_, ok := legacyNetworkFile(filepath.Join(dir, base))
	return ok
}

// legacyNetworkFile recognises the .network file amazon-ec2-net-utils 2.x made for an
// interface: a symlink NN-<iface>.network to 80-ec2.network, NN being 70 (07 on Debian).
func legacyNetworkFile(name string) (iface string, ok bool) {
	base := filepath.Base(name)
	rest, found := strings.CutPrefix(base, "70-")
	if !found {
		rest, found = strings.CutPrefix(base, "07-")
	}
	iface, hasSuffix := strings.CutSuffix(rest, ".network")
	if !found || !hasSuffix || iface == "" {
		return "", false
	}
	target, err := os.Readlink(name)
	if err != nil || filepath.Base(target) != BaseNetworkFile {
		return "", false
	}
	return iface, true
}
