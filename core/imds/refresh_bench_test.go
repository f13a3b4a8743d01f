package imds

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// BenchmarkRefresh is a no-change refresh of n ENIs × 50 addresses + 4 prefixes against the fake
// IMDS on loopback, over the fast path (fast.go) and over the SDK alone. The figure includes the
// fake's side of each request, in the same process.
func BenchmarkRefresh(b *testing.B) {
	for _, n := range []int{2, 8, 32} {
		for _, path := range []string{"fast", "sdk"} {
			b.Run(fmt.Sprintf("enis=%d/%s", n, path), func(b *testing.B) { benchRefresh(b, n, path == "sdk") })
		}
	}
}

func benchRefresh(b *testing.B, n int, sdkOnly bool) {
	sc := &scenario.Scenario{MAC: benchMAC(0), Interfaces: map[string]map[string]scenario.Value{}}
	for i := range n {
		keys := map[string]scenario.Value{
			"device-number": {fmt.Sprint(i % 16)}, "network-card": {fmt.Sprint(i / 16)},
			"interface-id": {fmt.Sprintf("eni-%017d", i)}, "subnet-ipv4-cidr-block": {fmt.Sprintf("10.%d.0.0/24", i)},
			"vpc-ipv4-cidr-blocks": {"10.0.0.0/8"},
		}
		for a := range 50 {
			keys["local-ipv4s"] = append(keys["local-ipv4s"], fmt.Sprintf("10.%d.0.%d", i, 10+a))
		}
		for p := range 4 {
			keys["ipv4-prefix"] = append(keys["ipv4-prefix"], fmt.Sprintf("10.%d.0.%d/28", i, 64+16*p))
		}
		sc.Interfaces[benchMAC(i)] = keys
	}
	ts := httptest.NewServer(fakeimds.New(sc))
	defer ts.Close()
	c, err := New(Options{Endpoint: ts.URL, Timeout: time.Second, MaxAttempts: 2, Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	c.fast.off = sdkOnly
	ctx := context.Background()
	full, err := c.Snapshot(ctx, nil)
	if err != nil || len(full.ENIs) != n {
		b.Fatalf("full read: %d ENIs, %v", len(full.ENIs), err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Snapshot(ctx, &full); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.Requests())/float64(b.N), "requests/op")
}

func benchMAC(i int) string { return fmt.Sprintf("02:00:00:00:%02x:%02x", i/256, i%256) }
