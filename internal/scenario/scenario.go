// Package scenario loads the IMDS scenarios shared by the planner's golden tests, the fake IMDS
// and the lab: one JSON file describes what IMDS serves (and, for planner tests, which links exist).
//
//	{
//	  "description": "primary + one secondary ENI",
//	  "mac": "02:00:00:00:05:05",
//	  "interfaces": {
//	    "02:00:00:00:05:05": {"device-number": "0", "local-ipv4s": ["10.0.0.5", "10.0.0.9"], ...}
//	  },
//	  "links": [{"name": "ens5", "index": 2, "mac": "02:00:00:00:05:05", "driver": "ena"}],
//	  "options": {"primary_rules": false}
//	}
//
// A key value is a string or a list of strings (served one per line, as IMDS does). A key that is
// absent is served as 404.
package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"sort"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
)

// Scenario is one IMDS state plus, optionally, the links and options a planner test uses.
type Scenario struct {
	Description string `json:"description,omitempty"`
	InstanceID  string `json:"instance-id,omitempty"`
	// MAC is meta-data/mac, the primary ENI's MAC.
	MAC        string                      `json:"mac"`
	Interfaces map[string]map[string]Value `json:"interfaces"`
	Links      []Link                      `json:"links,omitempty"`
	Options    *Options                    `json:"options,omitempty"`
}

// Link is a local link in a planner test.
type Link struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	MAC    string `json:"mac"`
	Driver string `json:"driver,omitempty"`
	Kind   string `json:"kind,omitempty"`
}

// Options override the planner defaults in a planner test; absent fields keep the defaults.
type Options struct {
	Drivers               []string `json:"drivers,omitempty"`
	Exclude               []string `json:"exclude,omitempty"`
	PrimaryRules          *bool    `json:"primary_rules,omitempty"`
	MainDefaultRoute      *bool    `json:"main_default_route,omitempty"`
	AssignPrefixAddresses *bool    `json:"assign_prefix_addresses,omitempty"`
	SecondaryAddresses    *bool    `json:"secondary_addresses,omitempty"`
	// StandBack and VPCCNI stand for what host-mode detection found (core.PlanOptions).
	StandBack string `json:"stand_back,omitempty"`
	VPCCNI    string `json:"vpc_cni,omitempty"`
}

// Value is an IMDS leaf: one string, or several served one per line.
type Value []string

// UnmarshalJSON accepts "a" or ["a", "b"].
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var list []string
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*v = list
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*v = Value{s}
	return nil
}

// MarshalJSON writes a single value as a string.
func (v Value) MarshalJSON() ([]byte, error) {
	if len(v) == 1 {
		return json.Marshal(v[0])
	}
	return json.Marshal([]string(v))
}

// String is the body IMDS serves for the value.
func (v Value) String() string { return strings.Join(v, "\n") }

// Load reads a scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return Parse(b, path)
}

// Parse decodes a scenario; name is used in errors.
func Parse(b []byte, name string) (*Scenario, error) {
	var s Scenario
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	if s.Interfaces == nil {
		s.Interfaces = map[string]map[string]Value{}
	}
	return &s, nil
}

// Clone returns a deep copy, so a test can mutate a scenario the fake IMDS is serving.
func (s *Scenario) Clone() *Scenario {
	c := *s
	c.Interfaces = make(map[string]map[string]Value, len(s.Interfaces))
	for mac, keys := range s.Interfaces {
		k := make(map[string]Value, len(keys))
		for name, v := range keys {
			k[name] = append(Value(nil), v...)
		}
		c.Interfaces[mac] = k
	}
	c.Links = append([]Link(nil), s.Links...)
	return &c
}

// MACs lists the interface MACs in a stable order.
func (s *Scenario) MACs() []string {
	macs := make([]string, 0, len(s.Interfaces))
	for mac := range s.Interfaces {
		macs = append(macs, mac)
	}
	sort.Strings(macs)
	return macs
}

// Raw returns what an IMDS client would read from this scenario.
func (s *Scenario) Raw() core.RawInstance {
	raw := core.RawInstance{PrimaryMAC: s.MAC, ENIs: make(map[string]map[string]string, len(s.Interfaces))}
	for mac, keys := range s.Interfaces {
		m := make(map[string]string, len(keys))
		for k, v := range keys {
			m[k] = v.String()
		}
		raw.ENIs[mac] = m
	}
	return raw
}

// CoreLinks converts the scenario's links.
func (s *Scenario) CoreLinks() []core.Link {
	out := make([]core.Link, 0, len(s.Links))
	for _, l := range s.Links {
		out = append(out, core.Link{Name: l.Name, Index: l.Index, MAC: l.MAC, Driver: l.Driver, Kind: l.Kind})
	}
	return out
}

// Apply overrides defaults with the scenario's options.
func (o *Options) Apply(base core.PlanOptions) core.PlanOptions {
	if o == nil {
		return base
	}
	if o.Drivers != nil {
		base.Drivers = o.Drivers
	}
	if o.Exclude != nil {
		base.Exclude = o.Exclude
	}
	set := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	set(&base.PrimaryRules, o.PrimaryRules)
	set(&base.MainDefaultRoute, o.MainDefaultRoute)
	set(&base.AssignPrefixAddresses, o.AssignPrefixAddresses)
	if o.SecondaryAddresses != nil {
		base.NoSecondaryAddresses = !*o.SecondaryAddresses
	}
	if o.StandBack != "" {
		base.StandBack = o.StandBack
	}
	if o.VPCCNI != "" {
		base.VPCCNI = o.VPCCNI
	}
	return base
}

// Tree returns the IMDS tree under /latest/meta-data/ as path → body for leaves; directories are
// derived by the server from the paths.
func (s *Scenario) Tree() map[string]string {
	t := map[string]string{"mac": s.MAC}
	if s.InstanceID != "" {
		t["instance-id"] = s.InstanceID
	}
	for mac, keys := range s.Interfaces {
		maps.Copy(t, prefixed("network/interfaces/macs/"+mac+"/", keys))
		t["network/interfaces/macs/"+mac+"/mac"] = mac
	}
	return t
}

func prefixed(prefix string, keys map[string]Value) map[string]string {
	out := make(map[string]string, len(keys))
	for k, v := range keys {
		out[prefix+k] = v.String()
	}
	return out
}
