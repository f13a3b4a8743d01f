package conf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzLoad feeds arbitrary file contents and one environment variable (any known key's, or an
// unknown one) through Load. It must not panic; it either returns a valid configuration or only
// *Error values naming the file or the environment; and the same input gives the same result.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../packaging/ec2-net-utils.conf")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct {
		file  string
		env   uint8
		value string
	}{
		{string(example), 0, "networkd"},
		{"", 3, "5s"},
		{"\uFEFFlog_level = \"debug\"\n", 1, "trace"},
		{"[imds]\ntimeout = \"soon\"\nmax_attempts = 4\n[interfaces]\nexclude = [\"eth*\", \"0A:1B:2C:3D:4E:5F\"]\n", 200, "eth1,eth[2"},
		{"[interfaces]\nmtu = 9001\ndrivers = [\"ena\", 2]\n", 255, ""},
		{"backend = \"networkd\"\n[networkd]\ndir = \"relative\"\n", 7, "x"},
	} {
		f.Add([]byte(seed.file), seed.env, seed.value)
	}
	fields := newSchema().fields
	f.Fuzz(func(t *testing.T, file []byte, env uint8, value string) {
		if len(file) > maxFileBytes {
			return
		}
		path := filepath.Join(t.TempDir(), "ec2-net-utils.conf")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		name := EnvPrefix + "NO_SUCH_KEY"
		if int(env) < len(fields) {
			name = fields[env].env
		}
		environ := []string{name + "=" + value}

		c, err := Load(path, true, environ)
		c2, err2 := Load(path, true, environ)
		if !reflect.DeepEqual(c, c2) || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Load is not deterministic: %v / %v", err, err2)
		}
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Load returned a configuration that does not validate: %v", verr)
			}
			return
		}
		for _, e := range configErrors(t, err) {
			if e.Source != path && e.Source != SourceEnvironment {
				t.Errorf("error %q names neither the file nor the environment", e)
			}
			if e.Source == SourceEnvironment && e.Key != name {
				t.Errorf("error %q about the environment does not name %s", e, name)
			}
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *Error", err)
		}
	})
}
