package conf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
	gotoml "github.com/pelletier/go-toml/v2"
)

// Load returns the configuration: Defaults, overridden by the TOML file at path (DefaultPath when
// path is empty), overridden by EC2_NET_UTILS_* variables in env (os.Environ() form, passed in so
// tests need not touch the process environment).
//
// A missing file is fine unless the caller says the user named it explicitly. Every problem —
// unreadable file, TOML syntax, unknown key or variable, wrong type, invalid value — is reported
// at once as errors joined from *Error, and then no Config is returned: a broken configuration is
// never half applied.
func Load(path string, explicit bool, env []string) (Config, error) {
	if path == "" {
		path = DefaultPath
	}
	l := &loader{schema: newSchema(), origins: map[string]origin{}}

	k := koanf.New(".")
	layers := []map[string]any{l.schema.flatten(Defaults()), l.readFile(path, explicit)}
	for _, layer := range layers {
		if err := k.Load(confmap.Provider(layer, "."), nil); err != nil {
			return Config{}, fmt.Errorf("conf: merge %s: %w", path, err)
		}
	}
	if err := k.Load(l.envProvider(env), nil); err != nil {
		return Config{}, fmt.Errorf("conf: merge environment: %w", err)
	}

	// Every value in k is already of its field's Go type (the loader converted and type-checked
	// it), so the decoder must not convert anything; an error here is a bug, not a user mistake.
	var c Config
	err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			WeaklyTypedInput: false,
			ErrorUnused:      true,
			ErrorUnset:       true,
			ZeroFields:       true,
		},
	})
	if err != nil {
		return Config{}, fmt.Errorf("conf: decode merged configuration: %w", err)
	}

	l.addValidation(c.Validate())
	if len(l.errs) > 0 {
		// Whole-file problems first, then the file's keys, then the variables, each by name, so
		// type and value problems of one key or table read together.
		sort.SliceStable(l.errs, func(i, j int) bool {
			a, b := l.errs[i], l.errs[j]
			if rank(a) != rank(b) {
				return rank(a) < rank(b)
			}
			return a.Key < b.Key
		})
		errs := make([]error, len(l.errs))
		for i, e := range l.errs {
			errs[i] = e
		}
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// origin records where a key's final value came from, so validation errors name the file or
// variable the user has to edit.
type origin struct{ source, key string }

type loader struct {
	schema  *schema
	origins map[string]origin // dotted key → where its value was set
	errs    []*Error
}

func (l *loader) fail(source, key, format string, args ...any) {
	l.errs = append(l.errs, &Error{Source: source, Key: key, Problem: fmt.Sprintf(format, args...)})
}

func rank(e *Error) int {
	switch {
	case e.Source == SourceEnvironment:
		return 2
	case e.Key == "":
		return 0
	default:
		return 1
	}
}

// maxFileBytes bounds the configuration file. The annotated example is about 6 KiB; a file of
// 1 MiB is no configuration, and reading /dev/zero without a bound ends with the OOM killer.
const maxFileBytes = 1 << 20

// utf8BOM is what some editors put at the start of a UTF-8 file. TOML does not allow it, but the
// user meant nothing by it.
const utf8BOM = "\uFEFF"

// readFile parses path into dotted key → typed value. Problems are recorded in l.errs.
func (l *loader) readFile(path string, explicit bool) map[string]any {
	b, err := readRegularFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		var fe *fileError
		problem := "cannot read: " + err.Error()
		var pe *fs.PathError
		switch {
		case errors.As(err, &fe):
			problem = fe.problem
		case errors.Is(err, fs.ErrNotExist):
			problem = "file does not exist"
		case errors.As(err, &pe):
			problem = "cannot read: " + pe.Err.Error()
		}
		l.errs = append(l.errs, &Error{Source: path, Problem: problem, Err: err})
		return nil
	}
	b = bytes.TrimPrefix(b, []byte(utf8BOM))

	raw, err := toml.Parser().Unmarshal(b)
	if err != nil {
		e := &Error{Source: path, Problem: "invalid TOML: " + strings.TrimPrefix(err.Error(), "toml: "), Err: err}
		var de *gotoml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			e.Key = strings.Join(de.Key(), ".")
			e.Problem = fmt.Sprintf("line %d, column %d: invalid TOML: %s",
				row, col, strings.TrimPrefix(de.Error(), "toml: "))
		}
		l.errs = append(l.errs, e)
		return nil
	}

	out := map[string]any{}
	l.walkTable(path, "", raw, out)
	return out
}

// fileError is a configuration path that is not a file we read.
type fileError struct{ problem string }

func (e *fileError) Error() string { return e.problem }

// readRegularFile reads a regular file of at most maxFileBytes. The open does not block: with
// O_NONBLOCK a FIFO opens at once (blocking, it waits for a writer, with SIGTERM unable to end
// the wait), and the type check rejects it before any read.
func readRegularFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &fileError{fmt.Sprintf("is %s, not a regular file", fileKind(st.Mode()))}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileBytes {
		return nil, &fileError{"is larger than 1 MiB, which no configuration needs"}
	}
	return b, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// walkTable checks one TOML table against the schema: unknown keys (also inside known tables)
// and wrong types are errors, the rest is converted into out.
func (l *loader) walkTable(path, table string, m map[string]any, out map[string]any) {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)

	for _, name := range names {
		v := m[name]
		key := name
		if table != "" {
			key = table + "." + name
		}
		// A quoted key containing a dot ("imds.timeout" = ...) is a single TOML key, not a path.
		if !strings.Contains(name, ".") {
			if f, ok := l.schema.byKey[key]; ok {
				if val, problem := fromTOML(f.kind, v); problem != "" {
					l.fail(path, key, "%s", problem)
				} else {
					out[key] = val
					l.origins[key] = origin{source: path, key: key}
				}
				continue
			}
			if l.schema.tables[key] {
				if sub, ok := v.(map[string]any); ok {
					l.walkTable(path, key, sub, out)
				} else {
					l.fail(path, key, "want a table, got %s", describe(v))
				}
				continue
			}
		}
		l.fail(path, key, "%s", unknown(name, table, v, l.schema.children(table)))
	}
}

func unknown(name, table string, v any, valid []string) string {
	what := "unknown key"
	if _, ok := v.(map[string]any); ok {
		what = "unknown table"
	}
	if s := suggest(name, valid); s != "" {
		return fmt.Sprintf("%s; did you mean %q?", what, s)
	}
	where := "at the top level"
	if table != "" {
		where = "in [" + table + "]"
	}
	return fmt.Sprintf("%s; valid %s: %s", what, where, strings.Join(valid, ", "))
}

// envProvider reads EC2_NET_UTILS_* variables through koanf's env provider. Variables are
// resolved by looking the whole name up among the known keys' names, because key names contain
// underscores and splitting on them would be ambiguous.
func (l *loader) envProvider(environ []string) *env.Env {
	sorted := slices.Clone(environ)
	sort.Strings(sorted) // deterministic error order
	return env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return sorted },
		TransformFunc: func(name, value string) (string, any) {
			f, ok := l.schema.byEnv[name]
			if !ok {
				l.fail(SourceEnvironment, name, "%s", l.unknownEnv(name))
				return "", nil
			}
			val, problem := fromEnv(f.kind, value)
			if problem != "" {
				l.fail(SourceEnvironment, name, "%s", problem)
				return "", nil
			}
			l.origins[f.key] = origin{source: SourceEnvironment, key: name}
			return f.key, val
		},
	})
}

func (l *loader) unknownEnv(name string) string {
	names := make([]string, 0, len(l.schema.fields))
	for _, f := range l.schema.fields {
		names = append(names, f.env)
	}
	if s := suggest(name, names); s != "" {
		return fmt.Sprintf("unknown variable; did you mean %s?", s)
	}
	return "unknown variable: no configuration key has this name (EC2_NET_UTILS_ + the dotted key in upper case, dots as underscores)"
}

// addValidation records Validate's problems under the file or variable that set the key.
func (l *loader) addValidation(err error) {
	if err == nil {
		return
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, err := range errs {
		var e *Error
		if !errors.As(err, &e) {
			l.errs = append(l.errs, &Error{Problem: err.Error(), Err: err})
			continue
		}
		e2 := *e
		if o, ok := l.origins[e.Key]; ok {
			e2.Source, e2.Key = o.source, o.key
		}
		l.errs = append(l.errs, &e2)
	}
}
