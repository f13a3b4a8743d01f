package applyrun

import "sync"

// Executor performs a backend's side effects, or in a dry run only records them: dry-run is a
// property of execution, so a backend computes the same actions either way. It records the
// actions of the last Apply (Begin to Actions), for `apply --dry-run` and for tests that assert
// what a plan and an observed state lead to.
type Executor struct {
	dryRun bool

	mu      sync.Mutex
	actions []string
}

// NewExecutor returns an executor; dryRun makes it record actions without running them.
func NewExecutor(dryRun bool) *Executor { return &Executor{dryRun: dryRun} }

// DryRun reports whether actions are only recorded.
func (e *Executor) DryRun() bool { return e.dryRun }

// Begin forgets the actions of the previous Apply.
func (e *Executor) Begin() {
	e.mu.Lock()
	e.actions = nil
	e.mu.Unlock()
}

// Do records the action (verb and object: "write /run/systemd/network/70-ens6.network",
// "reapply ens6") and, unless this is a dry run, runs it. A dry run's action succeeds.
func (e *Executor) Do(verb, object string, run func() error) error {
	e.mu.Lock()
	e.actions = append(e.actions, verb+" "+object)
	e.mu.Unlock()
	if e.dryRun {
		return nil
	}
	return run()
}

// Actions returns the actions recorded since Begin, in order.
func (e *Executor) Actions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.actions...)
}
