package fakeimds

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// Action is what a Step does to one ENI's metadata.
type Action int

const (
	// Publish serves Key with Value. With Key "" it lists the MAC's directory (empty at first),
	// and ends a Hold404 on it.
	Publish Action = iota
	// Hold404 lists Key but answers 404 for it, as IMDS does for a key it has not finished
	// propagating (amazon-ec2-net-utils #153). With Key "" the directory itself answers 404 while
	// macs/ still lists it. The next Publish of the same key ends it.
	Hold404
	// Withdraw removes Key; with Key "" the whole directory (the detach's last step).
	Withdraw
)

func (a Action) String() string {
	switch a {
	case Publish:
		return "publish"
	case Hold404:
		return "hold-404"
	case Withdraw:
		return "withdraw"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Step is one change EC2 makes to an ENI's metadata while it propagates, After the step before.
type Step struct {
	After  time.Duration
	MAC    string
	Key    string // "" is the MAC's directory
	Value  scenario.Value
	Action Action
}

func (st Step) String() string {
	key := st.Key
	if key == "" {
		key = "(directory)"
	}
	return fmt.Sprintf("+%v %s %s %s", st.After, st.Action, st.MAC, key)
}

// propagationOrder is the order IMDS fills an attached ENI's keys in, as seen on EC2 (and in
// amazon-ec2-net-utils #38, #90, #153): the numbering first, the addresses later, delegated
// prefixes last. Keys not listed here follow in name order.
var propagationOrder = []string{
	core.KeyDeviceNumber, core.KeyNetworkCard, core.KeyInterfaceID,
	core.KeyLocalIPv4s, core.KeySubnetIPv4CIDR, core.KeyVPCIPv4CIDRs,
	core.KeyIPv6s, core.KeySubnetIPv6CIDR, core.KeyVPCIPv6CIDRs,
	core.KeyIPv4Prefix, core.KeyIPv6Prefix,
}

// orderedKeys lists keys' names in propagationOrder.
func orderedKeys(keys map[string]scenario.Value) []string {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	rank := func(k string) int {
		if i := slices.Index(propagationOrder, k); i >= 0 {
			return i
		}
		return len(propagationOrder)
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		if a < b {
			return -1
		}
		return 1
	})
	return names
}

// AttachSteps is an attach as EC2 propagates it: the MAC's directory listed listAfter after the
// link appeared, then each key, keyGap apart, in propagationOrder.
func AttachSteps(mac string, keys map[string]scenario.Value, listAfter, keyGap time.Duration) []Step {
	steps := []Step{{After: listAfter, MAC: mac, Action: Publish}}
	for _, k := range orderedKeys(keys) {
		steps = append(steps, Step{After: keyGap, MAC: mac, Key: k, Value: slices.Clone(keys[k]), Action: Publish})
	}
	return steps
}

// DetachSteps is a detach as EC2 propagates it: keys withdrawn gap apart (addresses first, the
// numbering last), then the directory.
func DetachSteps(mac string, keys map[string]scenario.Value, gap time.Duration) []Step {
	order := orderedKeys(keys)
	slices.Reverse(order)
	steps := make([]Step, 0, len(order)+1)
	for _, k := range order {
		steps = append(steps, Step{After: gap, MAC: mac, Key: k, Action: Withdraw})
	}
	return append(steps, Step{After: gap, MAC: mac, Action: Withdraw})
}

// Apply makes one step's change now.
func (s *Server) Apply(st Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sc.Interfaces == nil {
		s.sc.Interfaces = map[string]map[string]scenario.Value{}
	}
	keys, listed := s.sc.Interfaces[st.MAC]
	held := st.MAC + "/" + st.Key // a suffix of the GET path, as NotFoundUntil matches it
	switch st.Action {
	case Publish:
		if !listed {
			keys = map[string]scenario.Value{}
			s.sc.Interfaces[st.MAC] = keys
		}
		if st.Key != "" {
			keys[st.Key] = slices.Clone(st.Value)
		}
		delete(s.notFound, held)
	case Hold404:
		if !listed {
			keys = map[string]scenario.Value{}
			s.sc.Interfaces[st.MAC] = keys
		}
		if st.Key != "" {
			if _, ok := keys[st.Key]; !ok {
				keys[st.Key] = slices.Clone(st.Value)
			}
		}
		s.notFound[held] = math.MaxInt
	case Withdraw:
		delete(s.notFound, held)
		if st.Key == "" {
			delete(s.sc.Interfaces, st.MAC)
		} else if listed {
			delete(keys, st.Key)
		}
	}
	s.setLocked(s.sc)
}

// Play applies steps in order, each After the one before, and calls applied (when not nil) right
// after each, with the time it took effect. It stops at the first error of applied, or when ctx
// is done.
func (s *Server) Play(ctx context.Context, steps []Step, applied func(Step, time.Time) error) error {
	for _, st := range steps {
		if err := sleep(ctx, st.After); err != nil {
			return fmt.Errorf("fakeimds: before %s: %w", st, err)
		}
		s.Apply(st)
		at := time.Now()
		if applied != nil {
			if err := applied(st, at); err != nil {
				return err
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
