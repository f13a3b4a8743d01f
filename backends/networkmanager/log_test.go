package networkmanager

import (
	"testing"

	"github.com/hashicorp/go-hclog"
)

// testLogger sends the backend's log to the test's, so a failing test shows what it decided.
func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}, DisableTime: true})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
