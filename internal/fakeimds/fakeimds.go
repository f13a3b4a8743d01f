// Package fakeimds is an IMDSv2-only fake of the EC2 instance metadata service, serving a
// scenario (internal/scenario) with the faults a real IMDS shows: propagation 404s, throttling,
// 5xx, slow answers, expired tokens and an unreachable endpoint; and, in timeline.go, EC2's timing
// (an attached ENI's directory listed after a delay, its keys one by one, keys withdrawn on detach). Unit tests run it on loopback
// with httptest; the lab runs it on 169.254.169.254 inside the VPC network namespace.
package fakeimds

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

const (
	tokenPath    = "/latest/api/token"
	metadataPath = "/latest/meta-data/"

	ttlHeader   = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	tokenHeader = "X-Aws-Ec2-Metadata-Token"

	// maxTokenTTL is what IMDS accepts: 1 second to 6 hours.
	maxTokenTTL = 21600
)

// Server serves one scenario over the IMDSv2 protocol. It is an http.Handler; all methods are
// safe for concurrent use, and a change takes effect for the next request.
type Server struct {
	requests atomic.Int64

	mu         sync.Mutex
	sc         *scenario.Scenario
	tree       map[string]string // leaf path under meta-data/ -> body
	dirs       map[string][]string
	now        func() time.Time
	tokens     map[string]time.Time // token -> expiry
	issued     int
	ttlCap     time.Duration
	delay      time.Duration
	failN      int
	failStatus int
	throttleN  int
	notFound   map[string]int   // path suffix -> 404s still to answer
	oversize   map[string]int64 // path suffix -> body size served instead of the value
	down       bool
	lastUA     string
}

// New serves s (a deep copy is kept, so the caller may go on using s).
func New(s *scenario.Scenario) *Server {
	srv := &Server{now: time.Now, tokens: map[string]time.Time{}, notFound: map[string]int{}, oversize: map[string]int64{}}
	srv.setLocked(s.Clone())
	return srv
}

// SetScenario replaces what is served.
func (s *Server) SetScenario(sc *scenario.Scenario) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setLocked(sc.Clone())
}

// Update mutates the served scenario in place, under the lock: attach an ENI, add an address.
func (s *Server) Update(f func(*scenario.Scenario)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.sc)
	s.setLocked(s.sc)
}

// Scenario returns a deep copy of what is served.
func (s *Server) Scenario() *scenario.Scenario {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sc.Clone()
}

func (s *Server) setLocked(sc *scenario.Scenario) {
	s.sc = sc
	s.tree = sc.Tree()
	s.dirs = directories(s.tree)
}

// directories derives every directory listing from the leaf paths: a child that has children of
// its own is listed with a trailing "/", as IMDS does.
func directories(tree map[string]string) map[string][]string {
	children := map[string]map[string]bool{}
	for leaf := range tree {
		parts := strings.Split(leaf, "/")
		for i := range parts {
			dir := strings.Join(parts[:i], "/")
			name := parts[i]
			if i < len(parts)-1 {
				name += "/"
			}
			if children[dir] == nil {
				children[dir] = map[string]bool{}
			}
			children[dir][name] = true
		}
	}
	dirs := make(map[string][]string, len(children))
	for dir, names := range children {
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		slices.Sort(list)
		dirs[dir] = list
	}
	return dirs
}

// Requests counts the requests that reached the handler (token PUTs and GETs, faults included;
// connections dropped by SetDown are not requests).
func (s *Server) Requests() int64 { return s.requests.Load() }

// ResetCounters zeroes the request count.
func (s *Server) ResetCounters() { s.requests.Store(0) }

// LastUserAgent is the User-Agent of the most recent request.
func (s *Server) LastUserAgent() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastUA
}

// SetClock replaces the clock tokens expire by, so expiry tests need not sleep.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetDelay delays every response by d (or until the client gives up on the request).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// FailNext answers the next n requests, token requests included, with status.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// Throttle answers the next n requests with 429, as IMDS does above its per-ENI packet rate.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleN = n
}

// NotFoundUntil answers 404 to the next n GETs whose path ends with key (say "device-number",
// or "02:00:00:00:06:06/device-number" for one ENI), even though the listing shows the key:
// what a freshly attached ENI looks like while IMDS propagates it.
func (s *Server) NotFoundUntil(key string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notFound[key] = n
}

// Oversize answers every GET whose path ends with key with size bytes of digits and newlines
// instead of the value, streamed without holding them in memory: a broken or hostile IMDS (size
// 0 serves the value again).
func (s *Server) Oversize(key string, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if size <= 0 {
		delete(s.oversize, key)
		return
	}
	s.oversize[key] = size
}

// ExpireTokens makes every token issued so far answer 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok := range s.tokens {
		s.tokens[tok] = time.Time{}
	}
}

// SetTokenTTLCap makes new tokens expire after min(requested TTL, d) while the response still
// echoes the requested TTL: the client believes its token is good when IMDS no longer does
// (0 removes the cap).
func (s *Server) SetTokenTTLCap(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttlCap = d
}

// SetDown makes the server drop every connection without an answer.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// ServeHTTP implements the IMDSv2 protocol over the scenario's tree.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		hangUp(w)
		return
	}
	s.requests.Add(1)
	s.lastUA = r.UserAgent()
	delay := s.delay
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}

	// An oversize body is streamed after the lock is released (defers run last in, first out),
	// so a client reading it slowly does not stall every other request.
	var stream int64
	defer func() { writeOversize(w, stream) }()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.failN > 0:
		s.failN--
		http.Error(w, http.StatusText(s.failStatus), s.failStatus)
	case s.throttleN > 0:
		s.throttleN--
		http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
	case r.URL.Path == tokenPath:
		s.issueToken(w, r)
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", "GET")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	case !s.validToken(r.Header.Get(tokenHeader)):
		http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
	case !strings.HasPrefix(r.URL.Path+"/", metadataPath):
		http.NotFound(w, r)
	case s.oversizeFor(r.URL.Path) > 0:
		stream = s.oversizeFor(r.URL.Path)
	default:
		s.serveMetadata(w, r, strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(metadataPath, "/")))
	}
}

func (s *Server) oversizeFor(path string) int64 {
	for _, key := range slices.Sorted(maps.Keys(s.oversize)) {
		if strings.HasSuffix(path, key) {
			return s.oversize[key]
		}
	}
	return 0
}

// writeOversize writes n bytes from one small buffer, chunked (no Content-Length: the client
// must notice while reading); it stops when the client hangs up.
func writeOversize(w http.ResponseWriter, n int64) {
	if n <= 0 {
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	chunk := []byte(strings.Repeat("1234567\n", 4096))
	for n > 0 {
		b := chunk[:min(int64(len(chunk)), n)]
		if _, err := w.Write(b); err != nil {
			return
		}
		n -= int64(len(b))
	}
}

func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(ttlHeader))
	if err != nil || ttl < 1 || ttl > maxTokenTTL {
		http.Error(w, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
		return
	}
	life := time.Duration(ttl) * time.Second
	if s.ttlCap > 0 && s.ttlCap < life {
		life = s.ttlCap
	}
	s.issued++
	tok := fmt.Sprintf("fake-imds-token-%d", s.issued)
	s.tokens[tok] = s.now().Add(life)
	w.Header().Set(ttlHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(tok))
}

func (s *Server) validToken(tok string) bool {
	exp, ok := s.tokens[tok]
	return ok && s.now().Before(exp)
}

// serveMetadata answers a GET for rel, the path below /latest/meta-data ("" or "/" is the root).
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, rel string) {
	for _, key := range slices.Sorted(maps.Keys(s.notFound)) {
		if n := s.notFound[key]; n > 0 && strings.HasSuffix(r.URL.Path, key) {
			s.notFound[key] = n - 1
			http.NotFound(w, r)
			return
		}
	}
	rel = strings.TrimPrefix(rel, "/")
	w.Header().Set("Content-Type", "text/plain")
	if body, ok := s.tree[rel]; ok {
		_, _ = w.Write([]byte(body))
		return
	}
	// IMDS lists a directory with or without the trailing slash.
	if list, ok := s.dirs[strings.TrimSuffix(rel, "/")]; ok {
		_, _ = w.Write([]byte(strings.Join(list, "\n")))
		return
	}
	http.NotFound(w, r)
}

// hangUp closes the connection without a response: the client sees a reset or EOF at once,
// not a timeout.
func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // the server aborts the response and closes the stream
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}
