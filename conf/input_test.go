package conf

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConfigMustBeARegularFile: --config on a FIFO, a device or a directory is an error naming
// the file, at once: a FIFO is not waited on (it used to block for as long as no writer came,
// ignoring SIGTERM) and /dev/zero is not read (it used to grow until the kernel killed the agent).
func TestConfigMustBeARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.conf")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, what string }{
		{fifo, "a FIFO"},
		{"/dev/zero", "a device"},
		{dir, "a directory"},
	} {
		t.Run(c.what, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := Load(c.path, true, nil)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second): // a liveness guard, not a measurement
				if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close() // lets the blocked open return
				}
				t.Fatalf("Load(%s) blocks", c.path)
			}
			want := c.path + ": is " + c.what + ", not a regular file"
			if !IsConfigError(err) || err.Error() != want {
				t.Errorf("err = %v, want %q", err, want)
			}
		})
	}
}

func TestConfigLargerThanTheCapIsAnError(t *testing.T) {
	path := writeConf(t, "# padding\n"+strings.Repeat("#", maxFileBytes)+"\n")
	_, err := Load(path, true, nil)
	want := path + ": is larger than 1 MiB, which no configuration needs"
	if !IsConfigError(err) || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestByteOrderMarkIsAccepted: editors on other systems save UTF-8 with a BOM; TOML forbids it
// at the start of a key, and the error was "invalid character at start of key: ï".
func TestByteOrderMarkIsAccepted(t *testing.T) {
	c, err := Load(writeConf(t, "\uFEFFlog_level = \"debug\"\n"), true, nil)
	if err != nil || c.LogLevel != "debug" {
		t.Errorf("log_level %q, err %v; want debug and no error", c.LogLevel, err)
	}
}

func TestExcludeTakesGlobsAndRejectsBadOnes(t *testing.T) {
	c, err := Load(writeConf(t, "[interfaces]\nexclude = [\"eth*\", \"ens[5-7]\", \"veth?\", \"a-very-long-pattern-*\"]\n"), true, nil)
	if err != nil || len(c.Interfaces.Exclude) != 4 {
		t.Fatalf("exclude %q, err %v; want the four patterns and no error", c.Interfaces.Exclude, err)
	}
	path := writeConf(t, "[interfaces]\nexclude = [\"eth1\", \"eth[1\"]\n")
	_, err = Load(path, true, nil)
	want := path + `: interfaces.exclude: element 2: "eth[1" is not a valid pattern: syntax error in pattern`
	if !IsConfigError(err) || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestLongValuesAreQuotedTruncated: a value is quoted in an error up to 64 bytes, then its length.
func TestLongValuesAreQuotedTruncated(t *testing.T) {
	long := strings.Repeat("x", 10000)
	path := writeConf(t, "backend = \""+long+"\"\n")
	_, err := Load(path, true, []string{"EC2_NET_UTILS_IMDS_TIMEOUT=" + long})
	msg := err.Error()
	if strings.Count(msg, `"`+strings.Repeat("x", 64)+`"…(10000 bytes)`) != 2 || len(msg) > 600 {
		t.Errorf("error of %d bytes, want both values cut at 64 bytes: %.700s", len(msg), msg)
	}
}
