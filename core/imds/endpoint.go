package imds

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// IMDS's addresses. With no endpoint configured the client tries them in this order, as
// amazon-ec2-net-utils 2.x does, so an IPv6-only instance needs no configuration.
const (
	EndpointIPv4 = "http://169.254.169.254"
	EndpointIPv6 = "http://[fd00:ec2::254]"
)

// endpoints returns the candidate base URLs: the configured one alone, or the defaults.
func (o Options) endpoints() ([]*url.URL, error) {
	raw := []string{o.Endpoint}
	switch {
	case o.Endpoint != "":
	case len(o.Endpoints) > 0:
		raw = o.Endpoints
	case o.IPv6:
		raw = []string{EndpointIPv6}
	default:
		raw = []string{EndpointIPv4, EndpointIPv6}
	}
	out := make([]*url.URL, 0, len(raw))
	for _, s := range raw {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("imds: endpoint %q is not an http:// or https:// URL", s)
		}
		if len(raw) > 1 && (u.Path != "" && u.Path != "/" || u.RawQuery != "") {
			// The fallback swaps only scheme and host; a path would be lost.
			return nil, fmt.Errorf("imds: fallback endpoint %q has a path", s)
		}
		out = append(out, u)
	}
	return out, nil
}

// connectTimeout bounds connecting to one endpoint. With several, each gets a share of the
// request's time, so that one whose packets vanish (rather than being refused) leaves time to try
// the next within the same request; IMDS itself accepts a connection in well under a millisecond.
func connectTimeout(request time.Duration, endpoints int) time.Duration {
	if endpoints <= 1 {
		return request
	}
	return min(request/time.Duration(endpoints+1), time.Second)
}

// fallbackTransport sends each request to the endpoint that answered last. When that one cannot
// even be connected to (refused, no route, connect timeout), it tries the others in order and
// remembers the first that answers. Only connection failures move it: an HTTP error or a hung
// response is IMDS's answer, and the retryer above handles it. Requests to IMDS have no body
// (a token PUT carries its TTL in a header), so they can be resent as they are.
type fallbackTransport struct {
	next      http.RoundTripper
	endpoints []*url.URL
	current   atomic.Int32
	log       hclog.Logger
}

func (t *fallbackTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	first := int(t.current.Load())
	var errs []error
	for i := range t.endpoints {
		n := (first + i) % len(t.endpoints)
		ep := t.endpoints[n]
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = ep.Scheme, ep.Host, ep.Host
		if i > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				break
			}
			body, err := req.GetBody()
			if err != nil {
				break
			}
			r.Body = body
		}
		resp, err := t.next.RoundTrip(r)
		if err == nil {
			if n != first && t.current.CompareAndSwap(int32(first), int32(n)) {
				t.log.Info("IMDS answers on another endpoint; using it from now on", "endpoint", ep.String(), "unreachable", t.endpoints[first].String())
			}
			return resp, nil
		}
		errs = append(errs, err)
		if !connectFailed(err) || req.Context().Err() != nil {
			break
		}
		t.log.Debug("IMDS endpoint unreachable, trying the next", "endpoint", ep.String(), "error", err)
	}
	return nil, errors.Join(errs...)
}

// connectFailed reports an error from establishing the connection, before anything was sent.
func connectFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
