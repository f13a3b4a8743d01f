package fakeimds_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

const fixture = "../../testdata/scenarios/imds-dual-stack.json"

type harness struct {
	t    *testing.T
	fake *fakeimds.Server
	url  string
}

func start(t *testing.T) *harness {
	t.Helper()
	sc, err := scenario.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeimds.New(sc)
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	return &harness{t: t, fake: fake, url: ts.URL}
}

// do sends one request and returns status and body; headers alternate name, value.
func (h *harness) do(method, path string, headers ...string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (h *harness) token() string {
	h.t.Helper()
	code, tok := h.do(http.MethodPut, "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", "60")
	if code != http.StatusOK || tok == "" {
		h.t.Fatalf("token: %d %q", code, tok)
	}
	return tok
}

func (h *harness) get(tok, path string) (int, string) {
	h.t.Helper()
	return h.do(http.MethodGet, "/latest/meta-data/"+path, "X-aws-ec2-metadata-token", tok)
}

func TestTokenProtocol(t *testing.T) {
	h := start(t)
	for _, ttl := range []string{"", "0", "21601", "-5", "sixty"} {
		if code, _ := h.do(http.MethodPut, "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", ttl); code != http.StatusBadRequest {
			t.Errorf("TTL %q: status %d, want 400", ttl, code)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, h.url+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"); resp.StatusCode != 200 || got != "21600" {
		t.Errorf("token response: status %d, TTL header %q; want 200 and the requested TTL echoed", resp.StatusCode, got)
	}

	if code, _ := h.do(http.MethodGet, "/latest/meta-data/mac"); code != http.StatusUnauthorized {
		t.Errorf("GET without token: %d, want 401 (IMDSv2 only)", code)
	}
	if code, _ := h.get("forged", "mac"); code != http.StatusUnauthorized {
		t.Errorf("GET with unknown token: %d, want 401", code)
	}
	if code, body := h.get(h.token(), "mac"); code != 200 || body != "02:00:00:00:05:05" {
		t.Errorf("GET mac: %d %q", code, body)
	}
}

func TestTreeListingsAndLeaves(t *testing.T) {
	h := start(t)
	tok := h.token()
	tests := []struct {
		path string
		code int
		body string
	}{
		{"network/interfaces/macs/", 200, "02:00:00:00:05:05/\n02:00:00:00:06:06/"},
		{"network/interfaces/macs", 200, "02:00:00:00:05:05/\n02:00:00:00:06:06/"},
		{"network/interfaces/macs/02:00:00:00:05:05/", 200,
			"device-number\ninterface-id\nlocal-ipv4s\nmac\nsubnet-ipv4-cidr-block\nvpc-ipv4-cidr-blocks"},
		{"network/interfaces/macs/02:00:00:00:05:05/local-ipv4s", 200, "10.0.0.5\n10.0.0.9"},
		{"network/interfaces/macs/02:00:00:00:06:06/ipv6-prefix", 200, "2600:1f14:abc:de01:b84d:0:0:0/80"},
		{"network/interfaces/macs/02:00:00:00:05:05/ipv4-prefix", 404, ""},
		{"network/interfaces/macs/02:00:00:00:07:07/", 404, ""},
		{"mac/", 404, ""},
		{"", 200, "instance-id\nmac\nnetwork/"},
	}
	for _, tt := range tests {
		code, body := h.get(tok, tt.path)
		if code != tt.code || (tt.code == 200 && body != tt.body) {
			t.Errorf("GET %q = %d %q, want %d %q", tt.path, code, body, tt.code, tt.body)
		}
	}
}

func TestScenarioChangesTakeEffectAtOnce(t *testing.T) {
	h := start(t)
	tok := h.token()
	h.fake.Update(func(sc *scenario.Scenario) {
		sc.Interfaces["02:00:00:00:05:05"]["local-ipv4s"] = scenario.Value{"10.0.0.5", "10.0.0.9", "10.0.0.11"}
		sc.Interfaces["02:00:00:00:07:07"] = map[string]scenario.Value{"device-number": {"2"}}
	})
	if _, body := h.get(tok, "network/interfaces/macs/02:00:00:00:05:05/local-ipv4s"); body != "10.0.0.5\n10.0.0.9\n10.0.0.11" {
		t.Errorf("after Update: %q", body)
	}
	if _, body := h.get(tok, "network/interfaces/macs/"); !strings.Contains(body, "02:00:00:00:07:07/") {
		t.Errorf("attached ENI not listed: %q", body)
	}

	// Scenario is a copy: changing it changes nothing served.
	copied := h.fake.Scenario()
	delete(copied.Interfaces, "02:00:00:00:07:07")
	if code, _ := h.get(tok, "network/interfaces/macs/02:00:00:00:07:07/device-number"); code != 200 {
		t.Errorf("mutating Scenario()'s copy changed the served tree: %d", code)
	}

	sc, err := scenario.Load("../../testdata/scenarios/imds-ipv6-only.json")
	if err != nil {
		t.Fatal(err)
	}
	h.fake.SetScenario(sc)
	if code, _ := h.get(tok, "network/interfaces/macs/02:00:00:00:06:06/local-ipv4s"); code != 404 {
		t.Errorf("after SetScenario(ipv6-only): local-ipv4s %d, want 404", code)
	}
}

func TestTokenExpiry(t *testing.T) {
	h := start(t)
	var mu sync.Mutex
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h.fake.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	tok := h.token() // 60 s
	advance(59 * time.Second)
	if code, _ := h.get(tok, "mac"); code != 200 {
		t.Errorf("token at 59 s of 60: %d", code)
	}
	advance(time.Second)
	if code, _ := h.get(tok, "mac"); code != 401 {
		t.Errorf("token at 60 s of 60: %d, want 401", code)
	}

	h.fake.SetTokenTTLCap(5 * time.Second)
	tok = h.token()
	advance(5 * time.Second)
	if code, _ := h.get(tok, "mac"); code != 401 {
		t.Errorf("token past the TTL cap: %d, want 401", code)
	}

	tok = h.token()
	h.fake.ExpireTokens()
	if code, _ := h.get(tok, "mac"); code != 401 {
		t.Errorf("token after ExpireTokens: %d, want 401", code)
	}
	if code, _ := h.get(h.token(), "mac"); code != 200 {
		t.Errorf("a new token after ExpireTokens: %d", code)
	}
}

func TestFaults(t *testing.T) {
	h := start(t)
	tok := h.token()

	h.fake.FailNext(2, http.StatusServiceUnavailable)
	h.fake.Throttle(1)
	var codes []int
	for range 4 {
		code, _ := h.get(tok, "mac")
		codes = append(codes, code)
	}
	if want := []int{503, 503, 429, 200}; !slices.Equal(codes, want) {
		t.Errorf("FailNext(2, 503) + Throttle(1): %v, want %v", codes, want)
	}

	h.fake.NotFoundUntil("02:00:00:00:06:06/device-number", 2)
	codes = codes[:0]
	for range 3 {
		code, _ := h.get(tok, "network/interfaces/macs/02:00:00:00:06:06/device-number")
		codes = append(codes, code)
	}
	if want := []int{404, 404, 200}; !slices.Equal(codes, want) {
		t.Errorf("NotFoundUntil(device-number, 2): %v, want %v", codes, want)
	}
	if code, _ := h.get(tok, "network/interfaces/macs/02:00:00:00:05:05/device-number"); code != 200 {
		t.Errorf("NotFoundUntil for one MAC hit another: %d", code)
	}
	h.fake.NotFoundUntil("device-number", 1)
	if _, body := h.get(tok, "network/interfaces/macs/02:00:00:00:06:06/"); !strings.Contains(body, "device-number") {
		t.Errorf("the listing must still show a key that 404s while propagating: %q", body)
	}
}

func TestDelayRespectsTheClient(t *testing.T) {
	h := start(t)
	tok := h.token()
	h.fake.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/latest/meta-data/mac", nil)
	req.Header.Set("X-aws-ec2-metadata-token", tok)
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed GET: %v, want the client's deadline", err)
	}
	h.fake.SetDelay(0)
	if code, _ := h.get(tok, "mac"); code != 200 {
		t.Errorf("after SetDelay(0): %d", code)
	}
}

func TestDownDropsConnections(t *testing.T) {
	h := start(t)
	h.fake.SetDown(true)
	h.fake.ResetCounters()
	req, _ := http.NewRequest(http.MethodPut, h.url+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("server is down but answered %d", resp.StatusCode)
	}
	if n := h.fake.Requests(); n != 0 {
		t.Errorf("dropped connections counted as requests: %d", n)
	}
	h.fake.SetDown(false)
	h.token()
}

func TestCountersAndUserAgent(t *testing.T) {
	h := start(t)
	tok := h.token()
	h.get(tok, "mac")
	h.do(http.MethodGet, "/latest/meta-data/mac", "X-aws-ec2-metadata-token", tok, "User-Agent", "ec2-net-utils/test")
	if n := h.fake.Requests(); n != 3 {
		t.Errorf("Requests = %d, want 3 (PUT + 2 GETs)", n)
	}
	if ua := h.fake.LastUserAgent(); ua != "ec2-net-utils/test" {
		t.Errorf("LastUserAgent = %q", ua)
	}
	h.fake.ResetCounters()
	if n := h.fake.Requests(); n != 0 {
		t.Errorf("after ResetCounters: %d", n)
	}
}

func TestOversizeStreamsThatManyBytesInsteadOfTheValue(t *testing.T) {
	h := start(t)
	tok := h.token()
	const path = "network/interfaces/macs/02:00:00:00:06:06/local-ipv4s"
	h.fake.Oversize("local-ipv4s", 1<<20+3)
	if code, body := h.get(tok, path); code != 200 || len(body) != 1<<20+3 {
		t.Errorf("Oversize(1 MiB + 3): %d, %d bytes", code, len(body))
	}
	if _, body := h.get(tok, "network/interfaces/macs/02:00:00:00:06:06/device-number"); body != "1" {
		t.Errorf("Oversize(local-ipv4s) changed device-number: %q", body)
	}
	h.fake.Oversize("local-ipv4s", 0)
	if _, body := h.get(tok, path); len(body) > 100 {
		t.Errorf("Oversize(0) still serves %d bytes", len(body))
	}
}
