package applyrun

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// addrKernel removes every owned address not wanted, except those in stuck, which it fails on.
type addrKernel struct {
	stuck []netip.Prefix
}

func (k addrKernel) SyncAddresses(_ core.Link, want, owned []netip.Prefix) (added, removed []netip.Prefix, err error) {
	added = slices.Clone(want)
	for _, a := range owned {
		switch {
		case slices.Contains(want, a):
		case slices.Contains(k.stuck, a):
			err = errors.New("operation not permitted")
		default:
			removed = append(removed, a)
		}
	}
	return added, removed, err
}

func TestSyncAddressesRecordsChangesAndKeepsWhatItCouldNotRemove(t *testing.T) {
	pfx := netip.MustParsePrefix
	p := core.InterfacePlan{Name: "ens6", Addresses: []netip.Prefix{pfx("10.0.1.20/32")}}
	owned := []netip.Prefix{pfx("10.0.1.19/32"), pfx("10.0.1.18/32")}
	tests := []struct {
		name        string
		stuck       []netip.Prefix
		wantRecord  []netip.Prefix
		wantErr     bool
		wantRemoved []string
	}{
		{
			name:        "all removed: the record is the plan's",
			wantRecord:  []netip.Prefix{pfx("10.0.1.20/32")},
			wantRemoved: []string{"ens6: address 10.0.1.19/32", "ens6: address 10.0.1.18/32"},
		},
		{
			name:        "one could not be removed: it stays ours, to remove next time",
			stuck:       []netip.Prefix{pfx("10.0.1.18/32")},
			wantRecord:  []netip.Prefix{pfx("10.0.1.20/32"), pfx("10.0.1.18/32")},
			wantErr:     true,
			wantRemoved: []string{"ens6: address 10.0.1.19/32"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ch core.Changes
			record, err := SyncAddresses(addrKernel{stuck: tt.stuck}, p, owned, &ch)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantRecord, record, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"ens6: address 10.0.1.20/32"}, ch.Written); diff != "" {
				t.Errorf("written (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRemoved, ch.Removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
		})
	}
}
