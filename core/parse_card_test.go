package core_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// cardOf maps each planned ENI to its network card.
func cardOf(inst core.Instance) map[string]int {
	out := map[string]int{}
	for _, e := range inst.ENIs {
		out[e.MAC] = e.NetworkCard
	}
	return out
}

// TestParseInstanceNetworkCardFallback: amazon-ec2-net-utils's _get_network_card answers 0 for
// the primary at once and for a secondary whose key never shows up after its retries. Here the
// reader says which ENIs have used up their wait (RawInstance.AssumeCardZero); the parser gives
// them card 0 only where that slot is free.
func TestParseInstanceNetworkCardFallback(t *testing.T) {
	const third = "02:00:00:00:07:07"
	multiCard := func() core.RawInstance {
		raw := twoENIs()
		// A card-1 ENI serves the key; the primary and the secondary (device 1) do not.
		raw.ENIs[third] = map[string]string{
			"device-number": "0", "network-card": "1", "interface-id": "eni-00000000000000007",
			"local-ipv4s": "10.0.2.7", "subnet-ipv4-cidr-block": "10.0.2.0/24",
		}
		return raw
	}
	tests := []struct {
		name      string
		edit      func(r *core.RawInstance)
		wantCards map[string]int
		wantProbs []core.ENIProblem
	}{
		{"the primary is card 0 without the key; a secondary waits for it", func(r *core.RawInstance) {},
			map[string]int{primaryMAC: 0, third: 1},
			[]core.ENIProblem{{MAC: secondaryMAC, Kind: core.ProblemNotPropagated,
				Reason: secondaryMAC + ": network-card is not in IMDS yet, although other ENIs of this instance have it"}}},
		{"a secondary that waited long enough falls back to card 0", func(r *core.RawInstance) {
			r.AssumeCardZero = []string{secondaryMAC}
		}, map[string]int{primaryMAC: 0, secondaryMAC: 0, third: 1}, nil},
		{"the fallback is matched by MAC, as the listing spells it", func(r *core.RawInstance) {
			r.AssumeCardZero = []string{"02:00:00:00:06:06/"}
		}, map[string]int{primaryMAC: 0, secondaryMAC: 0, third: 1}, nil},
		{"a key that shows up wins over the fallback", func(r *core.RawInstance) {
			r.ENIs[secondaryMAC]["network-card"] = "1"
			r.ENIs[secondaryMAC]["device-number"] = "1"
			r.AssumeCardZero = []string{secondaryMAC}
		}, map[string]int{primaryMAC: 0, secondaryMAC: 1, third: 1}, nil},
		{"no fallback onto a slot an ENI with the key holds", func(r *core.RawInstance) {
			r.ENIs["02:00:00:00:08:08"] = map[string]string{
				"device-number": "1", "network-card": "0", "interface-id": "eni-00000000000000008",
				"local-ipv4s": "10.0.3.8", "subnet-ipv4-cidr-block": "10.0.3.0/24",
			}
			r.AssumeCardZero = []string{secondaryMAC}
		}, map[string]int{primaryMAC: 0, third: 1, "02:00:00:00:08:08": 0},
			[]core.ENIProblem{{MAC: secondaryMAC, Kind: core.ProblemNotPropagated,
				Reason: secondaryMAC + ": network-card never appeared in IMDS, and its fallback, device-number 1 on network-card 0, is taken by 02:00:00:00:08:08"}}},
		{"no fallback onto the primary's slot", func(r *core.RawInstance) {
			r.ENIs[secondaryMAC]["device-number"] = "0"
			r.AssumeCardZero = []string{secondaryMAC}
		}, map[string]int{primaryMAC: 0, third: 1},
			[]core.ENIProblem{{MAC: secondaryMAC, Kind: core.ProblemNotPropagated,
				Reason: secondaryMAC + ": device-number is 0 on network-card 0, which IMDS reports for a secondary ENI until it has propagated"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := multiCard()
			tt.edit(&raw)
			inst, err := core.ParseInstance(raw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantCards, cardOf(inst)); diff != "" {
				t.Errorf("planned ENIs and their cards (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantProbs, inst.Problems, cmpEmptyIsNil); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpEmptyIsNil = cmp.FilterValues(func(a, b []core.ENIProblem) bool { return len(a) == 0 && len(b) == 0 },
	cmp.Comparer(func(_, _ []core.ENIProblem) bool { return true }))
