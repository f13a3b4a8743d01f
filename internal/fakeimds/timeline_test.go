package fakeimds_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

const lateMAC = "02:00:00:00:07:07"

func lateKeys() map[string]scenario.Value {
	return map[string]scenario.Value{
		"local-ipv4s": {"10.0.2.7"}, "device-number": {"2"}, "interface-id": {"eni-00000000000000007"},
		"subnet-ipv4-cidr-block": {"10.0.2.0/24"}, "ipv4-prefix": {"10.0.2.64/28"},
	}
}

// An attach propagates as on EC2: the directory first, then the numbering, the addresses, and the
// delegated prefixes last, one key per step.
func TestAttachStepsFillKeysInEC2Order(t *testing.T) {
	steps := fakeimds.AttachSteps(lateMAC, lateKeys(), 3*time.Second, 400*time.Millisecond)
	var got []string
	for _, st := range steps {
		got = append(got, st.Key)
	}
	want := []string{"", "device-number", "interface-id", "local-ipv4s", "subnet-ipv4-cidr-block", "ipv4-prefix"}
	if !slices.Equal(got, want) {
		t.Errorf("keys in order %q, want %q", got, want)
	}
	if steps[0].After != 3*time.Second || steps[1].After != 400*time.Millisecond {
		t.Errorf("delays %v, %v; want the listing delay, then the key gap", steps[0].After, steps[1].After)
	}
}

func TestPlayShowsEachStageOfAnAttachAndADetach(t *testing.T) {
	h := start(t)
	tok := h.token()
	dir := "network/interfaces/macs/" + lateMAC + "/"
	listed := func() bool {
		_, body := h.get(tok, "network/interfaces/macs/")
		return slices.Contains(lines(body), lateMAC+"/")
	}

	var seen []string
	check := func(st fakeimds.Step, _ time.Time) error {
		code, body := h.get(tok, dir)
		seen = append(seen, st.Key)
		if !listed() || code != http.StatusOK {
			t.Errorf("after %s: directory listed=%v, GET %d", st, listed(), code)
		}
		if st.Key != "" && !slices.Contains(lines(body), st.Key) {
			t.Errorf("after %s: %q not listed in %q", st, st.Key, body)
		}
		return nil
	}
	if listed() {
		t.Fatal("listed before the attach")
	}
	steps := fakeimds.AttachSteps(lateMAC, lateKeys(), 0, 0)
	if err := h.fake.Play(context.Background(), steps, check); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(steps) {
		t.Errorf("applied callback ran %d times, want %d", len(seen), len(steps))
	}

	// A listed key that answers 404 (propagating), until published again.
	h.fake.Apply(fakeimds.Step{MAC: lateMAC, Key: "local-ipv4s", Action: fakeimds.Hold404})
	if code, _ := h.get(tok, dir+"local-ipv4s"); code != http.StatusNotFound {
		t.Errorf("held key: %d, want 404", code)
	}
	if _, body := h.get(tok, dir); !slices.Contains(lines(body), "local-ipv4s") {
		t.Errorf("held key not listed: %q", body)
	}
	h.fake.Apply(fakeimds.Step{MAC: lateMAC, Key: "local-ipv4s", Value: scenario.Value{"10.0.2.8"}, Action: fakeimds.Publish})
	if code, body := h.get(tok, dir+"local-ipv4s"); code != 200 || body != "10.0.2.8" {
		t.Errorf("published again: %d %q", code, body)
	}

	// The directory itself answering 404 while macs/ lists it.
	h.fake.Apply(fakeimds.Step{MAC: lateMAC, Action: fakeimds.Hold404})
	if code, _ := h.get(tok, dir); code != http.StatusNotFound || !listed() {
		t.Errorf("held directory: GET %d, listed=%v; want 404 and listed", code, listed())
	}
	h.fake.Apply(fakeimds.Step{MAC: lateMAC, Action: fakeimds.Publish})
	if code, body := h.get(tok, dir); code != 200 || !slices.Contains(lines(body), "device-number") {
		t.Errorf("directory back: %d %q; want it with its keys", code, body)
	}

	if err := h.fake.Play(context.Background(), fakeimds.DetachSteps(lateMAC, lateKeys(), 0), nil); err != nil {
		t.Fatal(err)
	}
	if listed() {
		t.Error("still listed after the detach")
	}
}

func TestPlayStopsWhenCancelled(t *testing.T) {
	h := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := h.fake.Play(ctx, fakeimds.AttachSteps(lateMAC, lateKeys(), time.Hour, 0), nil)
	if err == nil {
		t.Fatal("Play of a cancelled context returned nil")
	}
	if _, ok := h.fake.Scenario().Interfaces[lateMAC]; ok {
		t.Error("a step was applied after the cancel")
	}
}

func lines(body string) []string { return strings.Split(body, "\n") }
