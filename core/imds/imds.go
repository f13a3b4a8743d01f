// Package imds reads the instance's network interfaces from the EC2 instance metadata service
// (IMDSv2 only), on top of aws-sdk-go-v2's feature/ec2/imds client.
//
// The one rule this package exists for: an IMDS error is never an empty list. A 404 is an answer
// (the key is absent, or not propagated yet); a timeout, a 5xx after retries, a refused
// connection, a 401 after a token refresh are not, and turn the whole read into an error. The
// caller then keeps its last good snapshot and never removes addresses or rules because IMDS
// hiccupped (amazon-ec2-net-utils #161).
package imds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Options configure a Client. Zero values take the defaults in their comments.
type Options struct {
	// Endpoint is IMDS's base URL, e.g. "http://169.254.169.254", and the only one used. Empty
	// means Endpoints.
	Endpoint string
	// Endpoints are tried in order when Endpoint is empty; the first that accepts a connection is
	// remembered and used until it stops accepting them (see fallbackTransport). Default:
	// EndpointIPv4, then EndpointIPv6, as amazon-ec2-net-utils 2.x tries them.
	Endpoints []string
	// IPv6 makes the default EndpointIPv6 alone (an instance known to be IPv6-only).
	IPv6 bool
	// Timeout bounds each HTTP request, connection included (default 2s). IMDS answers in about a
	// millisecond; a request that takes longer is lost, and waiting helps nothing.
	Timeout time.Duration
	// MaxAttempts per request, the first included (default 4).
	MaxAttempts int
	// MaxBackoff caps the exponential backoff with jitter between attempts (default 1s), so an
	// unhealthy IMDS sees a few spaced requests, not a storm (amazon-ec2-net-utils #129).
	MaxBackoff time.Duration
	// PropagationTimeout is how long Snapshot keeps re-reading ENIs that IMDS has not fully
	// propagated (default 30s, as cloud-init and amazon-ec2-net-utils wait).
	PropagationTimeout time.Duration
	// NetworkCardTimeout is how long a secondary ENI without network-card is waited for, on an
	// instance where other ENIs have the key, before it is taken as card 0 where that slot is free
	// (default 12s, amazon-ec2-net-utils's 12 tries 1 s apart once an ENI has shown the key;
	// never more than PropagationTimeout). The primary is card 0 without waiting.
	NetworkCardTimeout time.Duration
	// Concurrency is how many requests one read has in flight at once (default 4). IMDS limits
	// each ENI to 1024 packets per second; a handful in flight is far below that.
	Concurrency int
	// Version goes into the User-Agent as "ec2-net-utils/<version>" (amazon-ec2-net-utils #125).
	Version string
	Logger  hclog.Logger
}

// The values Options' zero fields take (see their comments), and the configuration file's defaults.
const (
	DefaultTimeout            = 2 * time.Second
	DefaultMaxAttempts        = 4
	DefaultMaxBackoff         = time.Second
	DefaultPropagationTimeout = 30 * time.Second
	// DefaultNetworkCardTimeout is amazon-ec2-net-utils' retry budget for network-card before it
	// takes card 0 (lib.sh _get_network_card).
	DefaultNetworkCardTimeout = 12 * time.Second
)

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, DefaultTimeout)
	def(&o.MaxBackoff, DefaultMaxBackoff)
	def(&o.PropagationTimeout, DefaultPropagationTimeout)
	def(&o.NetworkCardTimeout, DefaultNetworkCardTimeout)
	o.NetworkCardTimeout = min(o.NetworkCardTimeout, o.PropagationTimeout)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Version == "" {
		o.Version = "unknown"
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// Client reads network metadata. It is safe for concurrent use.
type Client struct {
	sdk      *sdkimds.Client
	opts     Options
	log      hclog.Logger
	requests atomic.Int64
	fast     *fastPath // fast.go: plain GETs with a kept token; the SDK for everything else

	mu sync.Mutex
	// last is the last read's keys: a Look starts from it, and a read with reuse takes from it
	// the keys of the ENIs still pending, so that only what they miss is fetched.
	last *reading
	// lastInst is what last parsed into, returned again by a refresh that read the same keys.
	lastInst core.Instance
	// pendingSince remembers when each ENI the last read found not propagated was first seen
	// so: a Waiting read waits for it once, for PropagationTimeout, not again on every later read.
	pendingSince map[string]time.Time
	// cardMissingSince remembers when each secondary ENI was first read without network-card
	// on a multi-card instance, for NetworkCardTimeout; kept while the MAC stays listed, so a
	// later full read does not take its fallback back.
	cardMissingSince map[string]time.Time
}

// New builds a client. It sends nothing: the first request goes out with the first read.
func New(opts Options) (*Client, error) {
	opts = opts.withDefaults()
	endpoints, err := opts.endpoints()
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, log: opts.Logger}

	// Our own http.Client instead of the SDK's: the SDK's would take HTTP_PROXY from the
	// environment (a link-local service must never go through a proxy) and caps response
	// headers at 0.5s regardless of the timeout asked for. Timeout applies per attempt.
	dialer := &net.Dialer{Timeout: connectTimeout(opts.Timeout, len(endpoints)), KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConnsPerHost:   opts.Concurrency,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: opts.Timeout,
	}
	var rt http.RoundTripper = countingTransport{next: boundedTransport{transport}, n: &c.requests}
	if len(endpoints) > 1 {
		rt = &fallbackTransport{next: rt, endpoints: endpoints, log: opts.Logger}
	}
	c.fast = newFastPath(&http.Client{Timeout: opts.Timeout, Transport: rt}, endpoints[0].String(), opts.Version)
	httpClient := &http.Client{Timeout: opts.Timeout, Transport: tokenSniffer{next: rt, fast: c.fast}}

	// The standard retryer retries 5xx, 429 (throttling), connection errors and timeouts, with
	// full-jitter exponential backoff capped at MaxBackoff; its retry quota stops retries when
	// IMDS keeps failing. 401s are retried by the SDK's token provider after dropping the token.
	retryer := retry.NewStandard(func(o *retry.StandardOptions) {
		// No retry quota: the SDK's token bucket (500, 14 per retry, 1 back per success) empties
		// after a short outage and an idle daemon takes about half an hour to refill it, during
		// which a single 503 or 429 would fail a whole read. MaxAttempts and the backoff already
		// bound what a failing IMDS costs.
		o.RateLimiter = ratelimit.None
		o.MaxAttempts = opts.MaxAttempts
		o.MaxBackoff = opts.MaxBackoff
		o.BaseDelay = min(50*time.Millisecond, opts.MaxBackoff)
	})

	sdkOpts := sdkimds.Options{
		// With several endpoints the SDK builds URLs for the first; fallbackTransport redirects.
		Endpoint:   endpoints[0].String(),
		HTTPClient: httpClient,
		Retryer:    retryer,
		// IMDSv2 only: falling back to v1 would hide a token failure and is disabled on
		// hardened instances anyway.
		EnableFallback: aws.FalseTernary,
		// Bounded by Timeout × MaxAttempts instead; the SDK's 5s per operation would cut the
		// retries short when Timeout is raised.
		DisableDefaultTimeout: true,
		// Otherwise the SDK replaces our retryer's backoff with a fixed 1s.
		DisableDefaultMaxBackoff: true,
		ClientLogMode:            aws.LogRetries,
		Logger:                   sdkLogger{opts.Logger},
		APIOptions: []func(*middleware.Stack) error{
			awsmiddleware.AddUserAgentKeyValue("ec2-net-utils", opts.Version),
		},
	}
	c.sdk = sdkimds.New(sdkOpts)
	return c, nil
}

// Requests counts the HTTP requests sent so far, token requests and retries included.
func (c *Client) Requests() int64 { return c.requests.Load() }

// Raw reads every ENI's keys as IMDS serves them. A key IMDS answers 404 for is absent from the
// map. See Snapshot for reuse and for the number of requests.
func (c *Client) Raw(ctx context.Context, reuse *core.Instance) (core.RawInstance, error) {
	r, err := c.read(ctx, reuse)
	if err != nil {
		return core.RawInstance{}, err
	}
	return r.raw, nil
}

// Snapshot reads and validates every ENI, once: it does not wait for ENIs IMDS has not fully
// propagated. They come back in Instance.Problems (a slow ENI is reported, it is not an error),
// and a later read that reuses this snapshot fetches only what each of them still misses: its
// listing, the listed keys it has no value for, and device-number and network-card while they
// are in doubt. The daemon's loop does those reads with its own backoff, so a pass configures
// the complete ENIs (the primary) at once. Waiting returns a Client view whose Snapshot waits.
//
// On error the returned Instance is the zero value, never a partial one. The caller must keep
// its previous snapshot and not act on the failed read.
//
// reuse, the previous snapshot of the same instance, saves the requests for the keys that do not
// change while an ENI stays attached: meta-data/mac, and for every ENI valid in reuse
// device-number, network-card, interface-id and subnet-ipv4-cidr-block. The caller must drop
// reuse (pass nil) after a link was detached or attached, because a re-attached ENI keeps its
// MAC but may get another device number. vpc-ipv4-cidr-blocks is reused too although a CIDR block
// can be associated with the VPC at any moment: nothing planned depends on it (the ENI table
// routes the subnet and a default route), so it waits for the daemon's periodic full read, and
// every refresh saves one request per ENI.
//
// Requests per read, with the token cached (one more PUT when it has expired, every 5 minutes):
//
//	without reuse: 2 (mac, macs/) + per ENI its listing + 1 per key it lists among
//	               core.ENIKeys: 1 + 5 for an IPv4 ENI (device-number, interface-id,
//	               local-ipv4s, subnet-ipv4-cidr-block, vpc-ipv4-cidr-blocks), +1 network-card
//	               on multi-card types, +1 for each IPv6 or prefix key the ENI has.
//	               N plain IPv4 ENIs: 2 + 6N.
//	with reuse:    per known ENI local-ipv4s and ipv4-prefix, + ipv6s and ipv6-prefix when
//	               dual-stack (no listings, no macs/ listing: see knownMACs and refresh.go).
//	               N IPv4 ENIs: 2N. Per ENI pending in reuse, its listing and the keys it
//	               misses (one for an ENI waiting for one key: 2).
//	Look:          1 (macs/), plus each new ENI as without reuse and each pending one as
//	               with reuse.
//	(Keys an ENI does not list cost nothing; a 404 costs its one request and is not retried.)
//
// (amazon-ec2-net-utils 2.x makes about 10 requests per ENI per refresh.)
func (c *Client) Snapshot(ctx context.Context, reuse *core.Instance) (core.Instance, error) {
	return c.snapshot(ctx, reuse, false)
}

// Waiting is a Client whose Snapshot waits for the ENIs IMDS has not fully propagated: for
// one-shot commands (plan, apply), whose user wants the whole instance at once.
type Waiting struct{ *Client }

// Waiting returns c as a Waiting client; both share what c remembers about pending ENIs.
func (c *Client) Waiting() Waiting { return Waiting{c} }

// Snapshot is Client.Snapshot, except that a read without reuse polls the ENIs IMDS has not
// fully propagated (their listings and missing keys only, with backoff) until they are complete or
// PropagationTimeout has passed since each was first seen so; then they are in Problems. The wait
// also ends one request timeout before ctx's deadline, so a caller with a deadline gets its
// snapshot.
func (w Waiting) Snapshot(ctx context.Context, reuse *core.Instance) (core.Instance, error) {
	return w.snapshot(ctx, reuse, true)
}

// Look reads what the daemon looks for while a link's ENI is not listed or not complete in IMDS:
// the macs/ listing, in full the ENIs it lists that the last read did not have, and what the
// ENIs the last read found not propagated still miss. Every other ENI is as the last read had it,
// and one that the listing no longer has is dropped. While nothing changes a look is one
// request. Before any read, it is Snapshot without reuse.
func (c *Client) Look(ctx context.Context) (core.Instance, error) {
	return c.look(ctx, nil)
}

// look is Look, reading the ENIs of reread in full as well (attached.go).
func (c *Client) look(ctx context.Context, reread map[string]bool) (core.Instance, error) {
	c.mu.Lock()
	last := c.last.clone()
	c.mu.Unlock()
	if last == nil {
		return c.snapshot(ctx, nil, false)
	}
	listing, err := c.getRequired(ctx, "network/interfaces/macs/")
	if err != nil {
		return core.Instance{}, err
	}
	r, listed := *last, listLines(listing)
	known := make(map[string]bool, len(listed))
	for dir := range r.raw.ENIs {
		known[normMAC(dir)] = !reread[normMAC(dir)]
	}
	for dir := range r.raw.ENIs {
		if !slices.ContainsFunc(listed, func(d string) bool { return normMAC(d) == normMAC(dir) }) {
			delete(r.raw.ENIs, dir)
			delete(r.unsettled, dir)
		}
	}
	before, err := r.parse()
	if err != nil {
		return core.Instance{}, err
	}
	pending := slices.DeleteFunc(r.notPropagated(before), func(dir string) bool { return reread[normMAC(dir)] })
	fresh := slices.DeleteFunc(listed, func(dir string) bool { return known[normMAC(dir)] })
	if err := c.readENIs(ctx, &r, fresh, nil); err != nil {
		return core.Instance{}, err
	}
	if len(pending) > 0 {
		if err := c.pollENIs(ctx, &r, pending); err != nil {
			return core.Instance{}, err
		}
	}
	c.assumeCardZero(&r.raw)
	inst, err := r.parse()
	if err != nil {
		return core.Instance{}, err
	}
	c.remember(&r, inst)
	return inst, nil
}

func (c *Client) snapshot(ctx context.Context, reuse *core.Instance, wait bool) (core.Instance, error) {
	r, err := c.read(ctx, reuse)
	if err != nil {
		return core.Instance{}, err
	}
	if inst, ok := c.unchanged(&r, reuse); ok {
		return inst, nil // refresh.go: the same keys as the last read parse the same
	}
	inst, err := r.parse()
	if err != nil {
		return core.Instance{}, err
	}
	young := c.remember(&r, inst)
	if !wait || reuse != nil {
		return inst, nil
	}

	deadline := time.Now().Add(c.opts.PropagationTimeout)
	if d, ok := ctx.Deadline(); ok && d.Add(-c.opts.Timeout).Before(deadline) {
		deadline = d.Add(-c.opts.Timeout)
	}
	backoff := min(50*time.Millisecond, c.opts.MaxBackoff)
	for len(young) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			c.log.Debug("ENIs still not propagated, giving up for now", "macs", strings.Join(young, ","))
			return inst, nil
		}
		c.log.Debug("waiting for ENIs to propagate", "macs", strings.Join(young, ","))
		if err := sleep(ctx, min(jitter(backoff), left)); err != nil {
			return core.Instance{}, fmt.Errorf("imds: waiting for %s to propagate: %w", strings.Join(young, ", "), err)
		}
		backoff = min(2*backoff, c.opts.MaxBackoff)
		if err := c.pollENIs(ctx, &r, young); err != nil {
			return core.Instance{}, err
		}
		c.assumeCardZero(&r.raw)
		if inst, err = r.parse(); err != nil {
			return core.Instance{}, err
		}
		young = c.remember(&r, inst)
	}
	return inst, nil
}

// remember keeps the read as the last one and returns the ENIs it found not propagated that
// were first seen so less than PropagationTimeout ago: the ones worth waiting for.
func (c *Client) remember(r *reading, inst core.Instance) []string {
	dirs := r.notPropagated(inst)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = r.clone()
	c.lastInst = inst
	since := make(map[string]time.Time, len(dirs))
	var young []string
	for _, dir := range dirs {
		mac := normMAC(dir)
		first, seen := c.pendingSince[mac]
		if !seen {
			first = now
		}
		since[mac] = first
		if now.Sub(first) < c.opts.PropagationTimeout {
			young = append(young, dir)
		}
	}
	c.pendingSince = since
	return young
}

// pendingIn returns the ENIs pending in reuse that the last read found not propagated, with a
// copy of the keys it had for them: a read polls them instead of reading them whole.
func (c *Client) pendingIn(reuse *core.Instance) map[string]map[string]string {
	if reuse == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return nil
	}
	byMAC := make(map[string]map[string]string, len(c.last.raw.ENIs))
	for dir, keys := range c.last.raw.ENIs {
		byMAC[normMAC(dir)] = keys
	}
	out := map[string]map[string]string{}
	for _, p := range reuse.Problems {
		_, pending := c.pendingSince[p.MAC]
		if keys, ok := byMAC[p.MAC]; ok && pending && p.Kind == core.ProblemNotPropagated {
			out[p.MAC] = maps.Clone(keys)
		}
	}
	return out
}

// reading is one read in progress: the raw keys, and which listed keys answered 404.
type reading struct {
	raw core.RawInstance
	// unsettled maps a MAC directory to keys its listing shows but that answered 404: IMDS has
	// not finished propagating them, even if they are optional.
	unsettled map[string][]string
}

// clone copies r deeply (nil for nil), so a remembered reading is never changed by a later one.
func (r *reading) clone() *reading {
	if r == nil {
		return nil
	}
	out := &reading{raw: r.raw, unsettled: make(map[string][]string, len(r.unsettled))}
	out.raw.ENIs = make(map[string]map[string]string, len(r.raw.ENIs))
	for dir, keys := range r.raw.ENIs {
		out.raw.ENIs[dir] = maps.Clone(keys)
	}
	out.raw.AssumeCardZero = slices.Clone(r.raw.AssumeCardZero)
	for dir, keys := range r.unsettled {
		out.unsettled[dir] = slices.Clone(keys)
	}
	return out
}

func (c *Client) read(ctx context.Context, reuse *core.Instance) (reading, error) {
	r := reading{raw: core.RawInstance{ENIs: map[string]map[string]string{}}, unsettled: map[string][]string{}}
	if reuse != nil && reuse.PrimaryMAC != "" {
		r.raw.PrimaryMAC = reuse.PrimaryMAC // the primary ENI cannot be detached
	} else {
		mac, err := c.getRequired(ctx, "mac")
		if err != nil {
			return reading{}, err
		}
		r.raw.PrimaryMAC = strings.TrimSpace(mac)
	}
	dirs := knownMACs(reuse)
	if dirs == nil {
		listing, err := c.getRequired(ctx, "network/interfaces/macs/")
		if err != nil {
			return reading{}, err
		}
		dirs = listLines(listing)
	}
	polled := c.pendingIn(reuse)
	dirs = slices.DeleteFunc(dirs, func(d string) bool { _, ok := polled[d]; return ok })
	if err := c.readENIs(ctx, &r, dirs, reusable(reuse)); err != nil {
		return reading{}, err
	}
	if len(polled) > 0 {
		for dir, keys := range polled {
			r.raw.ENIs[dir] = keys
		}
		// After the others: pollENIs sees every ENI's numbering to tell which is in doubt.
		if err := c.pollENIs(ctx, &r, slices.Sorted(maps.Keys(polled))); err != nil {
			return reading{}, err
		}
	}
	c.assumeCardZero(&r.raw)
	return r, nil
}

// assumeCardZero fills raw.AssumeCardZero: the secondary ENIs of a multi-card instance that have
// been read without network-card for NetworkCardTimeout.
func (c *Client) assumeCardZero(raw *core.RawInstance) {
	multiCard := false
	for _, keys := range raw.ENIs {
		if strings.TrimSpace(keys[core.KeyNetworkCard]) != "" {
			multiCard = true
		}
	}
	primary := normMAC(raw.PrimaryMAC)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	since := make(map[string]time.Time, len(raw.ENIs))
	raw.AssumeCardZero = nil
	for dir, keys := range raw.ENIs {
		mac := normMAC(dir)
		first, seen := c.cardMissingSince[mac]
		if seen {
			since[mac] = first
		}
		if !multiCard || mac == primary || strings.TrimSpace(keys[core.KeyNetworkCard]) != "" {
			continue
		}
		if !seen {
			first = now
			since[mac] = now
		}
		if now.Sub(first) >= c.opts.NetworkCardTimeout {
			raw.AssumeCardZero = append(raw.AssumeCardZero, dir)
		}
	}
	slices.Sort(raw.AssumeCardZero)
	c.cardMissingSince = since
}

// readENIs reads the MAC directories dirs into r: first each directory's listing, then only
// the keys it lists, skipping those reuse supplies.
func (c *Client) readENIs(ctx context.Context, r *reading, dirs []string, reuse map[string]core.ENI) error {
	// A refresh that reuses a snapshot is a handful of small requests, and nobody waits for it:
	// one at a time over one connection costs the least CPU (on VMs, every thread wake-up is
	// paid for). Reads for an attach or a full read go wide to be fast.
	concurrency := c.opts.Concurrency
	if len(reuse) > 0 {
		concurrency = 1
		var err error
		if dirs, err = c.refreshKnown(ctx, r, dirs, reuse); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	listed := make(map[string][]string, len(dirs))
	err := forEach(ctx, concurrency, dirs, func(ctx context.Context, dir string) error {
		body, found, err := c.get(ctx, macPath(dir, ""))
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if !found {
			// Detached between the two listings: IMDS said so, it is gone.
			c.log.Debug("ENI vanished from IMDS while being read", "mac", dir)
			delete(r.raw.ENIs, dir)
			delete(r.unsettled, dir)
			return nil
		}
		listed[dir] = listLines(body)
		return nil
	})
	if err != nil {
		return err
	}

	var jobs []keyJob
	for _, dir := range dirs {
		keys, ok := listed[dir]
		if !ok {
			continue
		}
		r.raw.ENIs[dir] = map[string]string{}
		delete(r.unsettled, dir)
		prev, reused := reuse[normMAC(dir)]
		for _, key := range core.ENIKeys {
			if !slices.Contains(keys, key) {
				continue // not listed: absent, and not worth a request
			}
			if v, ok := stableValue(prev, key); reused && ok {
				r.raw.ENIs[dir][key] = v
				continue
			}
			jobs = append(jobs, keyJob{dir, key})
		}
	}
	return c.fetchKeys(ctx, r, concurrency, jobs)
}

// pollENIs re-reads ENIs that are waited for: each one's listing, then only the listed keys it
// has no value for yet (404, empty, newly listed), plus device-number and network-card where
// their values are what keeps the ENI pending. Keys it already holds are not fetched again: an
// ENI waiting for one key costs one or two requests per round, not its whole directory.
func (c *Client) pollENIs(ctx context.Context, r *reading, dirs []string) error {
	doubt := numberingInDoubt(r.raw)
	var mu sync.Mutex
	var jobs []keyJob
	err := forEach(ctx, c.opts.Concurrency, dirs, func(ctx context.Context, dir string) error {
		body, found, err := c.get(ctx, macPath(dir, ""))
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if !found {
			c.log.Debug("ENI vanished from IMDS while being waited for", "mac", dir)
			delete(r.raw.ENIs, dir)
			delete(r.unsettled, dir)
			return nil
		}
		listed := listLines(body)
		prev := r.raw.ENIs[dir]
		keys := map[string]string{}
		for _, key := range core.ENIKeys {
			if !slices.Contains(listed, key) {
				continue // withdrawn or not there yet: absent
			}
			renumber := doubt[dir] && (key == core.KeyDeviceNumber || key == core.KeyNetworkCard)
			if v := prev[key]; strings.TrimSpace(v) != "" && !renumber {
				keys[key] = v
				continue
			}
			jobs = append(jobs, keyJob{dir, key})
		}
		r.raw.ENIs[dir] = keys
		delete(r.unsettled, dir)
		return nil
	})
	if err != nil {
		return err
	}
	return c.fetchKeys(ctx, r, c.opts.Concurrency, jobs)
}

// keyJob is one key of one MAC directory to fetch.
type keyJob struct{ dir, key string }

// fetchKeys fetches the jobs' keys into r: a value where IMDS has one, the key marked unsettled
// where it answers 404.
func (c *Client) fetchKeys(ctx context.Context, r *reading, concurrency int, jobs []keyJob) error {
	var mu sync.Mutex
	return forEach(ctx, concurrency, jobs, func(ctx context.Context, j keyJob) error {
		body, found, err := c.get(ctx, macPath(j.dir, j.key))
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if found {
			r.raw.ENIs[j.dir][j.key] = body
		} else {
			r.unsettled[j.dir] = append(r.unsettled[j.dir], j.key)
		}
		return nil
	})
}

// numberingInDoubt returns the MAC directories whose device-number and network-card values
// keep them pending: a secondary on device 0 of card 0 (amazon-ec2-net-utils #90), or two ENIs
// on one slot. Those two keys are re-read while waiting although they have values.
func numberingInDoubt(raw core.RawInstance) map[string]bool {
	primary := normMAC(raw.PrimaryMAC)
	doubt := map[string]bool{}
	bySlot := map[[2]string][]string{}
	for dir, keys := range raw.ENIs {
		dev, card := strings.TrimSpace(keys[core.KeyDeviceNumber]), strings.TrimSpace(keys[core.KeyNetworkCard])
		if dev == "" {
			continue
		}
		if card == "" {
			card = "0"
		}
		if dev == "0" && card == "0" && normMAC(dir) != primary {
			doubt[dir] = true
		}
		slot := [2]string{card, dev}
		bySlot[slot] = append(bySlot[slot], dir)
	}
	for _, dirs := range bySlot {
		if len(dirs) > 1 {
			for _, d := range dirs {
				doubt[d] = true
			}
		}
	}
	return doubt
}

// parse validates the reading; an ENI with unsettled keys is not propagated whatever the
// validation says, since a key it will have is missing.
func (r *reading) parse() (core.Instance, error) {
	inst, err := core.ParseInstance(r.raw)
	if err != nil || len(r.unsettled) == 0 {
		return inst, err
	}
	unsettled := make(map[string][]string, len(r.unsettled))
	for dir, keys := range r.unsettled {
		unsettled[normMAC(dir)] = keys
	}
	inst.ENIs = slices.DeleteFunc(inst.ENIs, func(e core.ENI) bool {
		keys, ok := unsettled[e.MAC]
		if ok {
			slices.SortFunc(keys, func(a, b string) int {
				return slices.Index(core.ENIKeys, a) - slices.Index(core.ENIKeys, b)
			})
			inst.Problems = append(inst.Problems, core.ENIProblem{MAC: e.MAC, Kind: core.ProblemNotPropagated,
				Reason: fmt.Sprintf("%s: IMDS lists %s but answers 404 for it", e.MAC, strings.Join(keys, ", "))})
		}
		return ok
	})
	slices.SortFunc(inst.Problems, func(a, b core.ENIProblem) int { return strings.Compare(a.MAC, b.MAC) })
	return inst, nil
}

// notPropagated returns the MAC directories of the ENIs worth re-reading.
func (r *reading) notPropagated(inst core.Instance) []string {
	dirs := make(map[string]string, len(r.raw.ENIs))
	for dir := range r.raw.ENIs {
		dirs[normMAC(dir)] = dir
	}
	var out []string
	for _, p := range inst.Problems {
		if dir, ok := dirs[p.MAC]; ok && p.Kind == core.ProblemNotPropagated {
			out = append(out, dir)
		}
	}
	return out
}

// reusable indexes the valid ENIs of a previous snapshot by MAC.
// knownMACs are the ENIs a refresh re-reads instead of listing macs/: ENIs come and go with link
// events, which ask for a read without reuse, so a refresh only needs the known ENIs' addresses
// and prefixes (a known ENI whose directory answers 404 was detached and is dropped). nil means
// "list them".
func knownMACs(prev *core.Instance) []string {
	if prev == nil || len(prev.ENIs)+len(prev.Problems) == 0 {
		return nil
	}
	macs := make([]string, 0, len(prev.ENIs)+len(prev.Problems))
	for _, e := range prev.ENIs {
		macs = append(macs, e.MAC)
	}
	for _, p := range prev.Problems {
		macs = append(macs, p.MAC)
	}
	return macs
}

func reusable(prev *core.Instance) map[string]core.ENI {
	if prev == nil {
		return nil
	}
	m := make(map[string]core.ENI, len(prev.ENIs))
	for _, e := range prev.ENIs {
		m[e.MAC] = e
	}
	return m
}

// stableValue renders a key that cannot change while the ENI stays attached back into the form
// IMDS serves, so a reused snapshot goes through the same validation as a fresh one.
func stableValue(e core.ENI, key string) (string, bool) {
	switch key {
	case core.KeyDeviceNumber:
		return strconv.Itoa(e.DeviceNumber), true
	case core.KeyNetworkCard:
		return strconv.Itoa(e.NetworkCard), true
	case core.KeyInterfaceID:
		return e.InterfaceID, e.InterfaceID != ""
	case core.KeySubnetIPv4CIDR:
		return e.SubnetIPv4.String(), e.SubnetIPv4.IsValid()
	case core.KeyVPCIPv4CIDRs:
		lines := make([]string, 0, len(e.VPCIPv4))
		for _, p := range e.VPCIPv4 {
			lines = append(lines, p.String())
		}
		return strings.Join(lines, "\n"), len(lines) > 0
	}
	return "", false
}

// getRequired is get for paths that exist on every instance: a 404 there is an error.
func (c *Client) getRequired(ctx context.Context, path string) (string, error) {
	body, found, err := c.get(ctx, path)
	if err == nil && !found {
		err = fmt.Errorf("imds: GET meta-data/%s: 404 not found", path)
	}
	return body, err
}

// get reads one path under meta-data/. found is false only for a 404 answered to this GET.
func (c *Client) get(ctx context.Context, path string) (body string, found bool, err error) {
	out, err := c.sdk.GetMetadata(ctx, &sdkimds.GetMetadataInput{Path: path})
	if err != nil {
		if isNotFound(err) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("imds: GET meta-data/%s: %w", path, err)
	}
	c.fast.degraded.Store(false) // IMDS answers again: back to the fast path
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	if err != nil {
		return "", false, fmt.Errorf("imds: GET meta-data/%s: read body: %w", path, err)
	}
	return string(b), true, nil
}

// isNotFound reports a 404 to a metadata GET. A 404 to the token PUT wraps the same error type
// but means no IMDSv2 endpoint answers here; reading it as "key absent" would turn an
// unreachable IMDS into an instance without addresses.
func isNotFound(err error) bool {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusNotFound || re.Response.Response == nil {
		return false
	}
	req := re.Response.Request
	return req != nil && req.Method == http.MethodGet
}

func macPath(dir, key string) string {
	return "network/interfaces/macs/" + strings.TrimSuffix(dir, "/") + "/" + key
}

// listLines splits a directory listing into names, dropping the trailing "/" of sub-directories
// and white space on both sides of it (found by FuzzListLines: "x /" must not be "x ").
func listLines(body string) []string {
	var out []string
	for line := range strings.SplitSeq(body, "\n") {
		line = strings.TrimRightFunc(strings.TrimSpace(line), func(r rune) bool { return r == '/' || unicode.IsSpace(r) })
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

// normMAC matches a MAC directory with core's normalised MACs (lower case, colons).
func normMAC(dir string) string {
	if hw, err := net.ParseMAC(strings.TrimSpace(dir)); err == nil {
		return hw.String()
	}
	return dir
}

// forEach runs fn on every item, at most n at a time. The first error cancels the others and is
// returned.
func forEach[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	if n <= 1 {
		for _, item := range items {
			if err := fn(ctx, item); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, item := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, item); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// jitter spreads waits over [d/2, d) so several agents retrying at once do not stay in step.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// MaxBodyBytes caps every IMDS response body. The largest values the agent reads are an ENI's
// address lists: 50 IPv6 addresses are about 2 KB, the macs/ listing of 100 ENIs about 1.8 KB.
// 64 KiB is 30 times that, and four requests in flight then hold at most 256 KiB. A larger body
// is not metadata (a broken IMDS, or something else answering on its address).
const MaxBodyBytes = 64 << 10

// ErrBodyTooLarge is the error a read fails with when a body exceeds MaxBodyBytes.
var ErrBodyTooLarge = bodyTooLarge{}

type bodyTooLarge struct{}

func (bodyTooLarge) Error() string {
	return fmt.Sprintf("response body is larger than %d bytes, which no IMDS value is", MaxBodyBytes)
}

// RetryableError tells the SDK's retryer not to retry: IMDS would serve the same body again.
func (bodyTooLarge) RetryableError() bool { return false }

// boundedTransport cuts every body off after MaxBodyBytes. It has to sit below the SDK, which
// reads each body whole (io.ReadAll) before handing it over.
type boundedTransport struct{ next http.RoundTripper }

func (t boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body}
	return resp, nil
}

type boundedBody struct {
	io.ReadCloser
	n int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	// One byte past the cap tells a body of exactly MaxBodyBytes from a longer one.
	if left := MaxBodyBytes + 1 - b.n; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if b.n > MaxBodyBytes {
		return n, ErrBodyTooLarge
	}
	return n, err
}

// countingTransport counts every HTTP request, retries and token requests included.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(req)
}

// sdkLogger sends the SDK's messages (retries, warnings) to hclog, at debug unless a warning.
type sdkLogger struct{ log hclog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	if c == logging.Warn {
		l.log.Warn(fmt.Sprintf(format, v...), "component", "imds-sdk")
		return
	}
	l.log.Debug(fmt.Sprintf(format, v...), "component", "imds-sdk")
}
