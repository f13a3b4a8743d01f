package imds_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
)

// TestAnOversizeBodyIsAnErrorNamingThePath: a 100 MB value or listing is cut off at the cap, the
// read fails naming the path (the daemon keeps its last plan, as for any IMDS failure), the value
// is not echoed into the error, and reading it costs no more than the cap in memory.
func TestAnOversizeBodyIsAnErrorNamingThePath(t *testing.T) {
	for _, c := range []struct{ key, path string }{
		{"local-ipv4s", "/local-ipv4s"}, // of either ENI, whichever is read first
		{"network/interfaces/macs/", "network/interfaces/macs/"},
	} {
		t.Run(c.key, func(t *testing.T) {
			l := startFake(t, "primary-and-secondary.json")
			l.fake.Oversize(c.key, 100<<20)
			client := newClient(t, l)

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := client.Snapshot(context.Background(), nil)
			runtime.ReadMemStats(&after)

			if err == nil {
				t.Fatal("Snapshot read a 100 MB body without an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.path+": ") || !strings.Contains(msg, "larger than 65536 bytes") {
				t.Errorf("error %q does not name %s and the cap", msg, c.path)
			}
			if len(msg) > 512 || strings.Contains(msg, "1234567") {
				t.Errorf("error echoes the body (%d bytes): %.300q", len(msg), msg)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("reading allocated %d MiB; the cap is 64 KiB", alloc>>20)
			}
		})
	}
}
