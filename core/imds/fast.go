package imds

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// getFast is get for the refresh's reads (refresh.go): the fast path, the SDK when it cannot
// answer. Full reads, looks and waits keep to the SDK, whose retries and errors the failure
// tests pin down; a refresh is where an idle daemon spends its CPU.
func (c *Client) getFast(ctx context.Context, path string) (body string, found bool, err error) {
	if body, found, handled, err := c.fast.get(ctx, path); handled {
		return body, found, err
	}
	return c.get(ctx, path)
}

// fastPath sends the common case — a GET that answers 200 or 404 — as one plain net/http request
// over the client's kept-alive connection. The SDK's middleware stack (request building, retry
// bookkeeping, logging hooks) costs more CPU than the request itself on a small idle VM, and a
// refresh of 32 ENIs is 64 GETs (issue #16, docs/performance.md). Everything else goes to the
// SDK, which retries and backs off as configured: no token yet, 401, 5xx, 429, connection errors.
//
// It uses the SDK's own token, as the SDK last sent it (tokenSniffer), so there is still one
// token per TTL: the SDK renews it on its next request (every full read) before it expires, and
// a token IMDS dropped early answers 401, which sends the request to the SDK, which renews it.
type fastPath struct {
	hc   *http.Client
	base string // endpoint URL without a trailing slash; fallbackTransport redirects
	ua   string
	// degraded skips the fast path after a transport or server error, so an unreachable IMDS
	// costs the SDK's attempts only, not one more; the SDK's next success clears it.
	degraded atomic.Bool
	// off sends everything to the SDK: for benchmarks that compare the two paths.
	off bool

	mu    sync.Mutex
	token string
}

const tokenHeader = "X-Aws-Ec2-Metadata-Token"

func newFastPath(hc *http.Client, endpoint, version string) *fastPath {
	return &fastPath{hc: hc, base: strings.TrimRight(endpoint, "/"), ua: "ec2-net-utils/" + version}
}

// get reads meta-data/path. handled is false when the caller must ask the SDK instead; err is
// only set together with handled (a body that cannot be read, e.g. too large).
func (f *fastPath) get(ctx context.Context, path string) (body string, found, handled bool, err error) {
	f.mu.Lock()
	tok := f.token
	f.mu.Unlock()
	if tok == "" || f.off || f.degraded.Load() {
		return "", false, false, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+"/latest/meta-data/"+path, nil)
	if err != nil {
		return "", false, false, nil
	}
	req.Header.Set(tokenHeader, tok)
	req.Header.Set("User-Agent", f.ua)
	resp, err := f.hc.Do(req)
	if err != nil {
		f.degraded.Store(ctx.Err() == nil)
		return "", false, false, nil
	}
	switch resp.StatusCode {
	case http.StatusOK:
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", false, true, fmt.Errorf("imds: GET meta-data/%s: read body: %w", path, err)
		}
		return string(b), true, true, nil
	case http.StatusNotFound:
		drain(resp)
		return "", false, true, nil
	case http.StatusUnauthorized:
		drain(resp)
		f.sawToken("") // the SDK renews it, and the sniffer picks the new one up
	default:
		drain(resp)
		f.degraded.Store(resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests)
	}
	return "", false, false, nil
}

// sawToken records the token the SDK sent ("" forgets it).
func (f *fastPath) sawToken(tok string) {
	f.mu.Lock()
	f.token = tok
	f.mu.Unlock()
}

// tokenSniffer hands the token of every GET the SDK sends to the fast path.
type tokenSniffer struct {
	next http.RoundTripper
	fast *fastPath
}

func (t tokenSniffer) RoundTrip(req *http.Request) (*http.Response, error) {
	if tok := req.Header.Get(tokenHeader); tok != "" && req.Method == http.MethodGet {
		t.fast.sawToken(tok)
	}
	return t.next.RoundTrip(req)
}

// drain reads what is left of a small error body so the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
}
