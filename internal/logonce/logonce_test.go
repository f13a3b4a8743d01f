package logonce

import "testing"

func TestChangedOnlyWhenTheValueChanges(t *testing.T) {
	var n Notes
	steps := []struct {
		key, value string
		want       bool
	}{
		{"ens6", "unmanaged", true},
		{"ens6", "unmanaged", false}, // the next pass finds the same: quiet
		{"ens7", "unmanaged", true},  // keys are independent
		{"ens6", "skip", true},
		{"ens6", "", true}, // the condition ended
		{"ens6", "", false},
		{"ens6", "skip", true}, // and came back: logged again
	}
	for i, s := range steps {
		if got := n.Changed(s.key, s.value); got != s.want {
			t.Errorf("step %d: Changed(%q, %q) = %v, want %v", i, s.key, s.value, got, s.want)
		}
	}
	if got := n.Last("ens6"); got != "skip" {
		t.Errorf("Last = %q, want skip", got)
	}
}
