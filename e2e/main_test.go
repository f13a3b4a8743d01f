// Package e2e runs the agent binary in the lab's simulated VPC against real network managers and
// checks what a user would check: rules, routes, addresses, files, and whether traffic passes the
// VPC's source/destination check.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
)

// labPrefix names every lab of this package, so leftovers are found and a leak fails the suite.
const labPrefix = "e2e"

// agentBin is the ec2-net-utils binary under test, built once by TestMain.
var agentBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse() // testing.Short needs parsed flags
	if os.Geteuid() != 0 || testing.Short() {
		return m.Run() // every test skips with its own message (lab.RequireRoot)
	}
	if err := lab.Sweep(labPrefix); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: removing leftovers of an earlier run: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "e2e-agent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	agentBin = filepath.Join(dir, "ec2-net-utils")
	build := exec.Command("go", "build", "-o", agentBin, "../cmd/ec2-net-utils")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build the agent: %v\n", err)
		return 1
	}
	code := m.Run()
	// A test that leaks a namespace is a failing test, even if its assertions passed.
	leaked, err := lab.Leftovers(labPrefix)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: cannot check for leaked namespaces: %v\n", err)
		return 1
	}
	if len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: network namespaces leaked: %s\n", strings.Join(leaked, " "))
		_ = lab.Sweep(labPrefix)
		return 1
	}
	return code
}
