package imds

import (
	"slices"
	"testing"
)

// The defaults are only inspected here: no test ever sends a request to the real endpoints.
func TestEndpointCandidates(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"none configured: IPv4, then IPv6", Options{}, []string{EndpointIPv4, EndpointIPv6}},
		{"configured endpoint overrides", Options{Endpoint: "http://127.0.0.1:8080", Endpoints: []string{"http://[::1]:1"}}, []string{"http://127.0.0.1:8080"}},
		{"IPv6-only", Options{IPv6: true}, []string{EndpointIPv6}},
		{"explicit list", Options{Endpoints: []string{"http://127.0.0.1:1", "http://[::1]:2"}}, []string{"http://127.0.0.1:1", "http://[::1]:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps, err := tt.opts.endpoints()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range eps {
				got = append(got, u.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("endpoints = %q, want %q", got, tt.want)
			}
		})
	}
}
