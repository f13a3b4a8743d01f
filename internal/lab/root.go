package lab

import (
	"os"
	"testing"
)

// RequireRoot skips the test unless it runs as root, and under -short: -short means unit tests
// only (make unit-test, and the packages' %check / dh_auto_test, which may run as root inside a
// package build where starting network managers in namespaces has no business).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab creates network namespaces")
	}
	if testing.Short() {
		t.Skip("lab test: skipped with -short")
	}
}
