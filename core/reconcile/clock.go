package reconcile

import "time"

// Clock is the loop's time source. The daemon uses the real one; tests pass a fake and step the
// loop's state transitions without sleeping.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of time.Timer the loop uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// chanOf is a timer's channel, nil (never ready in a select) for no timer.
func chanOf(t Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

// stopTimer stops t if there is one and returns nil, for `l.x = stopTimer(l.x)`.
func stopTimer(t Timer) Timer {
	if t != nil {
		t.Stop()
	}
	return nil
}
