package imds_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core/imds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// fakeAt serves the scenario on a given loopback address ("127.0.0.1:0" or "[::1]:PORT").
func fakeAt(t *testing.T, addr, name string) (*fakeimds.Server, *httptest.Server) {
	t.Helper()
	sc, err := scenario.Load("../../testdata/scenarios/" + name)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeimds.New(sc)
	ts := httptest.NewUnstartedServer(fake)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	return fake, ts
}

// downAddr is a loopback address where nothing listens: connecting is refused.
func downAddr(t *testing.T, network, addr string) string {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func fallbackClient(t *testing.T, endpoints ...string) *imds.Client {
	t.Helper()
	for _, e := range endpoints {
		if !strings.HasPrefix(e, "http://127.0.0.1:") && !strings.HasPrefix(e, "http://[::1]:") {
			t.Fatalf("refusing a non-loopback endpoint %s", e)
		}
	}
	c, err := imds.New(imds.Options{Endpoints: endpoints, Timeout: time.Second, MaxAttempts: 2,
		MaxBackoff: 5 * time.Millisecond, PropagationTimeout: time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}})})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The stand-ins for 169.254.169.254 and [fd00:ec2::254]: IPv4 is tried first, IPv6 answers when
// IPv4 cannot be reached, and the client stays with the endpoint that answered until it fails.
func TestFallsBackToTheSecondEndpointAndRemembersIt(t *testing.T) {
	v4 := downAddr(t, "tcp4", "127.0.0.1:0")
	v6fake, v6 := fakeAt(t, "[::1]:0", "primary-and-secondary.json")
	c := fallbackClient(t, "http://"+v4, v6.URL)
	ctx := context.Background()

	inst, err := c.Snapshot(ctx, nil)
	if err != nil {
		t.Fatalf("Snapshot with IPv4 down: %v", err)
	}
	if len(inst.ENIs) != 2 || v6fake.Requests() == 0 {
		t.Fatalf("read %d ENIs, %d requests to the IPv6 fake; want both ENIs from it", len(inst.ENIs), v6fake.Requests())
	}

	// IPv4 comes up: the client keeps using the endpoint that answered.
	v4fake, _ := fakeAt(t, v4, "primary-and-secondary.json")
	if _, err := c.Snapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := v4fake.Requests(); n != 0 {
		t.Errorf("%d requests went to IPv4 after IPv6 had answered, want 0 (remembered)", n)
	}

	// The remembered endpoint goes away: the next read moves on to the other one.
	v6.Close()
	if _, err := c.Snapshot(ctx, nil); err != nil {
		t.Fatalf("Snapshot with IPv6 down and IPv4 up: %v", err)
	}
	if v4fake.Requests() == 0 {
		t.Error("no request reached IPv4 after IPv6 went down")
	}
}

func TestFirstEndpointAnsweringIsUsedAlone(t *testing.T) {
	v4fake, v4 := fakeAt(t, "127.0.0.1:0", "primary-and-secondary.json")
	v6fake, v6 := fakeAt(t, "[::1]:0", "primary-and-secondary.json")
	c := fallbackClient(t, v4.URL, v6.URL)
	if _, err := c.Snapshot(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if v4fake.Requests() == 0 || v6fake.Requests() != 0 {
		t.Errorf("requests: IPv4 %d, IPv6 %d; want all to IPv4", v4fake.Requests(), v6fake.Requests())
	}
}

func TestNoEndpointAnsweringIsAnError(t *testing.T) {
	c := fallbackClient(t, "http://"+downAddr(t, "tcp4", "127.0.0.1:0"), "http://"+downAddr(t, "tcp6", "[::1]:0"))
	if _, err := c.Snapshot(context.Background(), nil); err == nil {
		t.Fatal("Snapshot succeeded with every endpoint down")
	}
}

// An HTTP error is IMDS's answer, not a reason to try another endpoint.
func TestHTTPErrorDoesNotSwitchEndpoint(t *testing.T) {
	v4 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(v4.Close)
	v6fake, v6 := fakeAt(t, "[::1]:0", "primary-and-secondary.json")
	c := fallbackClient(t, v4.URL, v6.URL)
	if _, err := c.Snapshot(context.Background(), nil); err == nil {
		t.Error("Snapshot succeeded although the first endpoint answered 403")
	}
	if n := v6fake.Requests(); n != 0 {
		t.Errorf("%d requests went to the second endpoint after an HTTP answer from the first", n)
	}
}

func TestFallbackEndpointsMustBeBaseURLs(t *testing.T) {
	for _, eps := range [][]string{{"http://127.0.0.1:1/latest", "http://[::1]:1"}, {"ftp://127.0.0.1", "http://[::1]:1"}} {
		if _, err := imds.New(imds.Options{Endpoints: eps}); err == nil {
			t.Errorf("New accepted endpoints %q", eps)
		}
	}
}

// blackholeAddr is a loopback address whose listener never accepts and whose queue is full, so
// a new connection's SYN is dropped and connecting hangs, as to an address nobody answers.
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the accept queue; these connections are never accepted.
	for range 4 {
		c, err := net.DialTimeout("tcp4", addr, 200*time.Millisecond)
		if err != nil {
			break // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	if c, err := net.DialTimeout("tcp4", addr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Skip("the kernel still completes connections to a full listen queue; cannot simulate a black hole")
	}
	return addr
}

// An IPv4 endpoint that drops packets (an IPv6-only instance) must not use up the whole request
// timeout: the IPv6 endpoint is tried within the same request.
func TestSilentFirstEndpointLeavesTimeForTheSecond(t *testing.T) {
	v4 := blackholeAddr(t)
	_, v6 := fakeAt(t, "[::1]:0", "primary-and-secondary.json")
	c := fallbackClient(t, "http://"+v4, v6.URL)
	start := time.Now()
	if _, err := c.Snapshot(context.Background(), nil); err != nil {
		t.Fatalf("Snapshot with a silent IPv4 endpoint: %v", err)
	}
	t.Logf("first read with a silent IPv4 endpoint: %v", time.Since(start).Round(time.Millisecond))
}
