package ifcfg

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Defect 3 of issue #10: with one route waiting for a router advertisement and another really
// refused, the refusal used to be swallowed with the wait (errors.Is on the joined error) and
// Apply reported success.
func TestRealRouteErrorIsNotSwallowedByARouterAdvertisementWait(t *testing.T) {
	plan, links := planFor(t, "secondary-basic", nil)
	f := newFixture(t, links)
	refused := errors.New("RTNETLINK answers: Network is unreachable")
	f.kernel.failRoute(3, "0.0.0.0/0", refused) // eth1's IPv4 default route; no RA seen on eth1 either
	_, err := f.backend.Apply(context.Background(), plan, links)
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "eth1") {
		t.Fatalf("Apply error = %v, want the refused route of eth1", err)
	}
}
