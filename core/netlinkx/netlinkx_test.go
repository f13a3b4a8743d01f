package netlinkx

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRetryDumpNeverReturnsAnInterruptedDump(t *testing.T) {
	t.Parallel()
	calls := 0
	got, err := retryDump("list things", func() ([]int, error) {
		calls++
		if calls < 3 {
			return []int{1}, netlink.ErrDumpInterrupted // partial
		}
		return []int{1, 2}, nil
	})
	if err != nil || len(got) != 2 || calls != 3 {
		t.Errorf("got %v, %v after %d calls; want the complete dump of the third call", got, err, calls)
	}

	calls = 0
	got, err = retryDump("list things", func() ([]int, error) {
		calls++
		return []int{1}, netlink.ErrDumpInterrupted
	})
	if !errors.Is(err, netlink.ErrDumpInterrupted) || got != nil || calls != dumpAttempts {
		t.Errorf("got %v, %v after %d calls; want no result and ErrDumpInterrupted after %d", got, err, calls, dumpAttempts)
	}
}
