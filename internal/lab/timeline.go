package lab

import (
	"context"
	"fmt"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// Script turns an ENI's MAC and the keys it publishes into the IMDS steps of an attach, e.g.
// Lagging(3*time.Second, 400*time.Millisecond).
type Script func(mac string, keys map[string]scenario.Value) []fakeimds.Step

// Lagging is EC2's usual attach: the directory listed listAfter after the link appeared, then
// each key keyGap apart (fakeimds.AttachSteps).
func Lagging(listAfter, keyGap time.Duration) Script {
	return func(mac string, keys map[string]scenario.Value) []fakeimds.Step {
		return fakeimds.AttachSteps(mac, keys, listAfter, keyGap)
	}
}

// Played says when each step of a timeline took effect in the fake IMDS.
type Played struct {
	Steps []fakeimds.Step
	At    []time.Time
}

// Last is when the last step took effect (zero if none was played).
func (p Played) Last() time.Time {
	if len(p.At) == 0 {
		return time.Time{}
	}
	return p.At[len(p.At)-1]
}

// AttachLagging attaches the ENI the way EC2 often does (amazon-ec2-net-utils #38, #90, #153):
// the link appears in the instance at once, IMDS catches up by script's steps. It returns when
// the last step took effect, after each step bringing the VPC's DHCP and source/destination check
// in line. The ENI counts as attached from the link move on, so Detach works mid-timeline.
func (l *Lab) AttachLagging(ctx context.Context, name string, script Script) (Played, error) {
	l.mu.Lock()
	e, ok := l.enis[name]
	switch {
	case !ok:
		l.mu.Unlock()
		return Played{}, fmt.Errorf("lab: attach %s: no such ENI", name)
	case e.attached:
		l.mu.Unlock()
		return Played{}, fmt.Errorf("lab: attach %s: already attached", name)
	}
	if err := moveLink(l.pool, l.poolNS, l.inst, e.mac, ""); err != nil {
		l.mu.Unlock()
		return Played{}, fmt.Errorf("lab: attach %s: %w", name, err)
	}
	e.attached = true
	steps := script(e.mac, cloneKeys(e.keys))
	l.mu.Unlock()
	l.logf("lab %s: %s attached, IMDS lagging by %d steps", l.id, name, len(steps))
	return l.play(ctx, steps)
}

// DetachLagging detaches the ENI as EC2 propagates it: the link leaves the instance at once, then
// IMDS withdraws its keys gap apart and finally its directory (fakeimds.DetachSteps).
func (l *Lab) DetachLagging(ctx context.Context, name string, gap time.Duration) (Played, error) {
	l.mu.Lock()
	e, ok := l.enis[name]
	switch {
	case !ok:
		l.mu.Unlock()
		return Played{}, fmt.Errorf("lab: detach %s: no such ENI", name)
	case !e.attached:
		l.mu.Unlock()
		return Played{}, fmt.Errorf("lab: detach %s: not attached", name)
	}
	if err := moveLink(l.inst, l.instNS, l.pool, e.mac, e.spec.Name); err != nil {
		l.mu.Unlock()
		return Played{}, fmt.Errorf("lab: detach %s: %w", name, err)
	}
	e.attached = false
	if keys, ok := l.imds.Scenario().Interfaces[e.mac]; ok {
		e.keys = cloneKeys(keys) // what a later attach publishes again, as in Detach
	}
	steps := fakeimds.DetachSteps(e.mac, e.keys, gap)
	l.mu.Unlock()
	return l.play(ctx, steps)
}

// PlayIMDS plays steps on the fake IMDS (a 404 window, a key withdrawn), keeping the VPC in line
// after each.
func (l *Lab) PlayIMDS(ctx context.Context, steps []fakeimds.Step) (Played, error) {
	return l.play(ctx, steps)
}

func (l *Lab) play(ctx context.Context, steps []fakeimds.Step) (Played, error) {
	var p Played
	err := l.imds.Play(ctx, steps, func(st fakeimds.Step, at time.Time) error {
		p.Steps = append(p.Steps, st)
		p.At = append(p.At, at)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			return fmt.Errorf("lab: IMDS step %s: lab closed", st)
		}
		return l.syncVPC(ctx)
	})
	return p, err
}
