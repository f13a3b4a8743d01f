package netlinkx

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// doInNetns runs fn on an OS thread that has entered ns, or directly when ns is not open. fn
// should only create sockets (which keep the netns they were born in) and return. The switch
// happens on a dedicated goroutine locked to its thread: if returning to the original netns
// fails, that goroutine exits still locked and the runtime discards the thread, so no goroutine
// ever runs in a foreign netns by accident — not the caller's, and not a later one.
func doInNetns(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread() // setns failed: the thread is still where it was
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked on purpose: the thread dies with this goroutine.
			errc <- fmt.Errorf("return from netns %s: %w (after: %v)", ns, err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
