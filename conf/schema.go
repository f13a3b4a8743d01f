package conf

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// EnvPrefix starts every environment variable that overrides a key.
const EnvPrefix = "EC2_NET_UTILS_"

// kind is what a key holds; it decides how TOML and environment values are converted.
type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindDuration
	kindStrings
)

// field is one leaf key of the configuration.
type field struct {
	key   string // dotted: imds.timeout
	env   string // EC2_NET_UTILS_IMDS_TIMEOUT
	kind  kind
	index []int // reflect path into Config
}

// schema lists the known keys, derived from Config's koanf tags so that the struct is the one
// place a key is declared.
type schema struct {
	fields []field // in struct order, which is the order of the example file
	byKey  map[string]*field
	byEnv  map[string]*field
	tables map[string]bool
}

var durationType = reflect.TypeFor[time.Duration]()

func newSchema() *schema {
	s := &schema{byKey: map[string]*field{}, byEnv: map[string]*field{}, tables: map[string]bool{}}
	s.walk(reflect.TypeFor[Config](), "", nil)
	for i := range s.fields {
		f := &s.fields[i]
		s.byKey[f.key] = f
		s.byEnv[f.env] = f
	}
	return s
}

// walk panics on a field it cannot map: that is a programming error every test would hit.
func (s *schema) walk(t reflect.Type, prefix string, index []int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name := sf.Tag.Get("koanf")
		if name == "" {
			panic(fmt.Sprintf("conf: field %s.%s has no koanf tag", t.Name(), sf.Name))
		}
		key := prefix + name
		idx := append(slices.Clone(index), i)
		var k kind
		switch {
		case sf.Type == durationType:
			k = kindDuration
		case sf.Type.Kind() == reflect.String:
			k = kindString
		case sf.Type.Kind() == reflect.Bool:
			k = kindBool
		case sf.Type.Kind() == reflect.Int:
			k = kindInt
		case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.String:
			k = kindStrings
		case sf.Type.Kind() == reflect.Struct:
			s.tables[key] = true
			s.walk(sf.Type, key+".", idx)
			continue
		default:
			panic(fmt.Sprintf("conf: field %s (%s) has an unsupported type %s", sf.Name, key, sf.Type))
		}
		s.fields = append(s.fields, field{key: key, env: envName(key), kind: k, index: idx})
	}
}

// envName maps a dotted key to its variable: upper case, dots to underscores. Keys contain
// underscores too, so the mapping is only ever used in this direction and looked up in byEnv.
func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// flatten returns c as dotted key → typed value, the form koanf's confmap provider takes.
func (s *schema) flatten(c Config) map[string]any {
	v := reflect.ValueOf(c)
	out := make(map[string]any, len(s.fields))
	for _, f := range s.fields {
		fv := v.FieldByIndex(f.index)
		if f.kind == kindStrings {
			// A fresh, non-nil slice: koanf replaces lists wholesale, and the
			// caller's Config must not share its backing array.
			out[f.key] = append([]string{}, fv.Interface().([]string)...)
			continue
		}
		out[f.key] = fv.Interface()
	}
	return out
}

// children returns the names directly inside table ("" is the top level), for suggestions.
func (s *schema) children(table string) []string {
	prefix := ""
	if table != "" {
		prefix = table + "."
	}
	seen := map[string]bool{}
	add := func(key string) {
		if rest, ok := strings.CutPrefix(key, prefix); ok && !strings.Contains(rest, ".") {
			seen[rest] = true
		}
	}
	for _, f := range s.fields {
		add(f.key)
	}
	for t := range s.tables {
		add(t)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// want describes what a kind accepts, in TOML terms.
func (k kind) want() string {
	switch k {
	case kindString:
		return "a string"
	case kindBool:
		return "true or false"
	case kindInt:
		return "a whole number"
	case kindDuration:
		return `a duration string such as "2s"`
	case kindStrings:
		return `a list of strings such as ["a", "b"]`
	}
	return "?"
}

// fromTOML converts a value as the TOML parser returns it. It is strict on purpose: a string
// where a boolean belongs is a mistake to report, not something to guess at.
func fromTOML(k kind, v any) (any, string) {
	wrongType := func() (any, string) { return nil, "want " + k.want() + ", got " + describe(v) }
	switch k {
	case kindString:
		if s, ok := v.(string); ok {
			return s, ""
		}
	case kindBool:
		if b, ok := v.(bool); ok {
			return b, ""
		}
	case kindInt:
		if n, ok := v.(int64); ok {
			if int64(int(n)) != n {
				return nil, fmt.Sprintf("%d is too large", n)
			}
			return int(n), ""
		}
	case kindDuration:
		if s, ok := v.(string); ok {
			return parseDuration(s)
		}
	case kindStrings:
		list, ok := v.([]any)
		if !ok {
			return wrongType()
		}
		out := make([]string, 0, len(list))
		for i, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Sprintf("element %d: want a string, got %s", i+1, describe(e))
			}
			out = append(out, s)
		}
		return out, ""
	}
	return wrongType()
}

// fromEnv converts an environment value. Lists are comma separated; an empty value is an empty
// list, which is how a variable clears a list the file set.
func fromEnv(k kind, v string) (any, string) {
	switch k {
	case kindString:
		return v, ""
	case kindBool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Sprintf("%s is not a boolean; want true or false", core.QuoteValue(v))
		}
		return b, ""
	case kindInt:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Sprintf("%s is not a whole number", core.QuoteValue(v))
		}
		return n, ""
	case kindDuration:
		return parseDuration(v)
	case kindStrings:
		out := []string{}
		for e := range strings.SplitSeq(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
		return out, ""
	}
	return nil, "unsupported kind"
}

func parseDuration(s string) (any, string) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fmt.Sprintf(`%s is not a duration (write a number with a unit: "500ms", "10s", "1m")`, core.QuoteValue(s))
	}
	return d, ""
}

// describe names a TOML value and its type for an error message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %s", core.QuoteValue(v))
	case bool:
		return fmt.Sprintf("the boolean %t", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the float %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("the date/time %v", v)
	}
}

// suggest returns the candidate closest to name if it is close enough to be a likely typo.
func suggest(name string, candidates []string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "_")) }
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein(norm(name), norm(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
