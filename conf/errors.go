package conf

import (
	"errors"
	"strings"
)

// SourceEnvironment is the Source of errors about EC2_NET_UTILS_* variables.
const SourceEnvironment = "environment"

// Error is one problem with the configuration, phrased for the person who has to fix it:
// where (file or environment), which key (or variable), and what is wrong.
type Error struct {
	// Source is the file path, SourceEnvironment, or empty for Validate on a Config built in code.
	Source string
	// Key is the dotted key (imds.timeout) for file problems, the variable name for environment
	// problems, and empty for problems with the file as a whole (unreadable, not TOML).
	Key     string
	Problem string
	// Err is the underlying error, if any (for example fs.ErrNotExist for a missing file).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	for _, part := range []string{e.Source, e.Key} {
		if part != "" {
			b.WriteString(part)
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Problem)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// IsConfigError reports whether err (or an error it wraps or joins) is a configuration problem
// the user must fix, as opposed to an internal failure. The CLI exits 2 on these.
func IsConfigError(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}
