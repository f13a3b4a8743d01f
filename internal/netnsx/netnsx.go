// Package netnsx enters network namespaces safely: the one place the project switches a thread's
// network namespace (CNI's ns.Do, with the thread discipline the Go runtime needs).
package netnsx

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a dedicated OS thread switched into ns, or directly when ns is not open (the
// caller's own namespace). fn should create what it needs (a socket, an open /proc/sys/net file:
// both keep the namespace they were born in) and return.
//
// The switch happens on a goroutine locked to its thread. If switching back fails, that goroutine
// exits still locked and the runtime discards the thread, so no goroutine ever runs in a foreign
// namespace by accident — not the caller's, and not a later one. fn's error is returned as fn
// wrapped it, so callers can still test it with errors.Is and errors.As.
func Do(ns netns.NsHandle, fn func() error) error {
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
			errc <- errors.Join(ferr, fmt.Errorf("return from netns %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// NewNamed creates a named network namespace (/run/netns/<name>) and returns a handle to it,
// without leaving any thread of the process inside it.
func NewNamed(name string) (netns.NsHandle, error) {
	ns, err := create(func() (netns.NsHandle, error) { return netns.NewNamed(name) })
	if err != nil {
		return ns, fmt.Errorf("create netns %s: %w", name, err)
	}
	return ns, nil
}

// New creates an unnamed network namespace and returns the only handle to it, without leaving
// any thread of the process inside it. The namespace lives until the handle is closed and no
// process or link holds it: nothing is left behind, even if the process dies.
func New() (netns.NsHandle, error) {
	ns, err := create(netns.New)
	if err != nil {
		return ns, fmt.Errorf("create netns: %w", err)
	}
	return ns, nil
}

// create runs mk, which moves the calling thread into a new namespace, on a thread of its own.
// An open handle of the current namespace makes Do switch threads, which is what mk needs.
func create(mk func() (netns.NsHandle, error)) (netns.NsHandle, error) {
	cur, err := netns.Get()
	if err != nil {
		return netns.None(), fmt.Errorf("get current netns: %w", err)
	}
	defer cur.Close()
	ns := netns.None()
	err = Do(cur, func() error {
		var err error
		ns, err = mk()
		return err
	})
	if err != nil {
		return netns.None(), err
	}
	return ns, nil
}
