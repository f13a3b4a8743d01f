package networkmanager

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/godbus/dbus/v5"
)

// absentMeans holds the keys Render writes whose NM default is not the zero value of their type.
// NM leaves a key at its default out of GetSettings and GetAppliedConnection.
var absentMeans = map[string]any{
	"ipv4.route-metric":  int64(-1),
	"ipv6.route-metric":  int64(-1),
	"ipv6.addr-gen-mode": int32(3), // NM_SETTING_IP6_CONFIG_ADDR_GEN_MODE_DEFAULT
}

// diff returns the first key of want whose value NM's copy (have) does not hold, as
// "setting.key", or "" when have holds all of want. Keys of have that want does not name are not
// compared: NM adds its own defaults (permissions, s390-options, the deprecated address and route
// arrays), and a key a user added to our profile is no reason to rewrite it.
func diff(want, have Settings) string {
	for _, setting := range sortedKeys(want) {
		for _, key := range sortedKeys(want[setting]) {
			w := want[setting][key]
			h, ok := have[setting][key]
			if !ok {
				if !isAbsent(setting+"."+key, w) {
					return setting + "." + key
				}
				continue
			}
			if canon(w) != canon(h) {
				return setting + "." + key
			}
		}
	}
	return ""
}

// isAbsent reports whether NM would leave a key with this value out of its copy.
func isAbsent(key string, v dbus.Variant) bool {
	if d, ok := absentMeans[key]; ok {
		return canon(dbus.MakeVariant(d)) == canon(v)
	}
	switch x := v.Value().(type) {
	case string:
		return x == ""
	case bool:
		return !x
	case uint8, uint32, int32, int64, uint64:
		return fmt.Sprint(x) == "0"
	case []byte:
		return len(x) == 0
	case map[string]string:
		return len(x) == 0
	case []map[string]dbus.Variant:
		return len(x) == 0
	}
	return false
}

// canon writes a value with its D-Bus signature, maps with sorted keys, so that two values are
// equal exactly when NM would store the same thing: a uint32 10001 is not an int32 10001.
func canon(v dbus.Variant) string {
	var b strings.Builder
	writeCanon(&b, v)
	return b.String()
}

func writeCanon(b *strings.Builder, v dbus.Variant) {
	b.WriteString(v.Signature().String())
	b.WriteByte(':')
	switch x := v.Value().(type) {
	case []map[string]dbus.Variant:
		b.WriteByte('[')
		for i, m := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('{')
			for j, k := range sortedKeys(m) {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(k)
				b.WriteByte('=')
				writeCanon(b, m[k])
			}
			b.WriteByte('}')
		}
		b.WriteByte(']')
	case map[string]string:
		keys := sortedKeys(x)
		for _, k := range keys {
			fmt.Fprintf(b, "%q=%q;", k, x[k])
		}
	case []byte:
		fmt.Fprintf(b, "%x", x)
	default:
		fmt.Fprintf(b, "%#v", x)
	}
}

// routingKeys are what the agent adds to an applied connection that is not its own.
var routingKeys = []string{"address-data", "route-data", "routing-rules"}

// routingDiff is diff restricted to the addresses, routes and rules of both families.
func routingDiff(want, have Settings) string {
	for _, family := range []string{"ipv4", "ipv6"} {
		for _, key := range routingKeys {
			w, ok := want[family][key]
			if !ok {
				continue
			}
			h, ok := have[family][key]
			if !ok {
				if !isAbsent(family+"."+key, w) {
					return family + "." + key
				}
				continue
			}
			if canon(w) != canon(h) {
				return family + "." + key
			}
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return slices.Clip(keys)
}
