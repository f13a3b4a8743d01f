package main

import (
	"os"
	"strings"
	"testing"
)

// TestMain isolates the CLI tests from the developer's environment, and makes sure that a test
// which forgets --imds-endpoint (or a regression that reaches IMDS earlier than expected) can
// never talk to the machine's own 169.254.169.254: the default endpoint is a closed port on
// loopback.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "EC2_NET_UTILS_") || strings.HasPrefix(name, "AWS_") {
			os.Unsetenv(name)
		}
	}
	os.Setenv("EC2_NET_UTILS_IMDS_ENDPOINT", "http://127.0.0.1:1")
	os.Exit(m.Run())
}
