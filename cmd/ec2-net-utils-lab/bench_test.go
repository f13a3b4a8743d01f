package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
)

// The benchmark runs end to end at a tiny size and reports every measure. Its figures are not
// asserted (they are timings); what a no-change refresh sends to IMDS is a count, and is.
func TestBenchRunsAtATinySize(t *testing.T) {
	lab.RequireRoot(t)
	agent := filepath.Join(t.TempDir(), "ec2-net-utils")
	if out, err := exec.Command("go", "build", "-o", agent, "../ec2-net-utils").CombinedOutput(); err != nil {
		t.Fatalf("build the agent: %v\n%s", err, out)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := bench(ctx, options{agent: agent, backend: "networkd", repo: "../..", out: &out,
		enis: 3, ips: 3, prefixes: 1, attaches: 1, refreshes: 2, deletions: 1, idle: time.Second})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`RESULT .* refresh_imds_per_eni=([0-9.]+) `).FindSubmatch(out.Bytes())
	if m == nil {
		t.Fatal("no RESULT line")
	}
	if perENI, _ := strconv.ParseFloat(string(m[1]), 64); perENI > 2 {
		t.Errorf("a no-change refresh sent %.2f IMDS requests per IPv4 ENI, want at most 2", perENI)
	}
}
