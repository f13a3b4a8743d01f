// Package hostname sets the host name from IMDS local-hostname when the host has none of its
// own: what amazon-ec2-net-utils 2.7's set-hostname-imds did, opt-in ([hostname] from_imds).
package hostname

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
)

// StaticFile is where systemd (hostnamed) and the distributions keep the static host name.
const StaticFile = "/etc/hostname"

// Setter makes name the host's static and current host name.
type Setter interface {
	SetHostname(ctx context.Context, name string) error
}

// Source gives IMDS local-hostname.
type Source interface {
	LocalHostname(ctx context.Context) (string, error)
}

// Result says what Apply did and why.
type Result struct {
	// Set is the name given to the host; empty when Apply left the host name alone.
	Set string
	// Reason explains the decision in a log line's words.
	Reason string
}

// Apply sets the host name from src when the static host name in staticFile is missing, empty
// or a placeholder (localhost, localhost.localdomain); otherwise it leaves it alone and asks
// IMDS nothing. A host name an administrator or cloud-init wrote always wins.
func Apply(ctx context.Context, staticFile string, src Source, set Setter) (Result, error) {
	current, err := readStatic(staticFile)
	if err != nil {
		return Result{}, err
	}
	if !placeholder(current) {
		return Result{Reason: fmt.Sprintf("%s sets %q", staticFile, current)}, nil
	}
	raw, err := src.LocalHostname(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("hostname: %w", err)
	}
	name, err := fromIMDS(raw)
	if err != nil {
		return Result{}, err
	}
	if err := set.SetHostname(ctx, name); err != nil {
		return Result{}, fmt.Errorf("hostname: set %q: %w", name, err)
	}
	why := "no static host name"
	if current != "" {
		why = fmt.Sprintf("static host name %q is a placeholder", current)
	}
	return Result{Set: name, Reason: why}, nil
}

// readStatic returns the first name in the file (hostnamed's reading: comments and blank lines
// skipped); empty when the file is missing or holds none.
func readStatic(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("hostname: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("hostname: read %s: %w", path, err)
	}
	return "", nil
}

func placeholder(name string) bool {
	switch strings.ToLower(name) {
	case "", "localhost", "localhost.localdomain":
		return true
	}
	return false
}

// label is one DNS label as host names allow it.
var validName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// maxLen is the kernel's HOST_NAME_MAX.
const maxLen = 64

// fromIMDS checks local-hostname (ip-10-0-1-5.ec2.internal, or a resource name) and shortens a
// name longer than the kernel accepts to its first label.
func fromIMDS(raw string) (string, error) {
	name := strings.TrimSuffix(strings.TrimSpace(raw), ".")
	if !validName.MatchString(name) {
		return "", fmt.Errorf("hostname: IMDS local-hostname %q is not a valid host name", raw)
	}
	if len(name) > maxLen {
		name, _, _ = strings.Cut(name, ".")
	}
	return name, nil
}
