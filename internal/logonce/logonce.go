// Package logonce keeps a steady state quiet: a condition is logged when it starts or changes,
// not at every pass that finds it again.
package logonce

import "sync"

// Notes remembers the last value noted under each key. The zero value is ready to use; it is
// safe for concurrent use.
type Notes struct {
	mu   sync.Mutex
	last map[string]string
}

// Changed records value under key and reports whether it differs from the value recorded before
// ("" when none): the caller logs when it does. Recording "" forgets the key, so the condition
// is logged again when it comes back.
func (n *Notes) Changed(key, value string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.last[key] == value {
		return false
	}
	if value == "" {
		delete(n.last, key)
		return true
	}
	if n.last == nil {
		n.last = map[string]string{}
	}
	n.last[key] = value
	return true
}

// Last returns the value recorded under key, "" when none.
func (n *Notes) Last(key string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last[key]
}
