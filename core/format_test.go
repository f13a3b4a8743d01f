package core

import (
	"net/netip"
	"testing"
)

func TestRulesAndRoutesPrintInTheWordsOfIP(t *testing.T) {
	for _, tc := range []struct {
		got  interface{ String() string }
		want string
	}{
		{Rule{Family: IPv4, From: netip.MustParsePrefix("10.0.1.5/32"), Table: 10001, Priority: 10001}, "10001: from 10.0.1.5 lookup 10001"},
		{Rule{Family: IPv4, From: netip.MustParsePrefix("10.0.1.64/28"), Table: 10001, Priority: 10001}, "10001: from 10.0.1.64/28 lookup 10001"},
		{Rule{Family: IPv6, From: netip.MustParsePrefix("2001:db8::5/128"), Table: 10002, Priority: 10002}, "10002: from 2001:db8::5 lookup 10002"},
		{Rule{Family: IPv4, Table: 200, Priority: 200}, "200: from all lookup 200"},
		{Route{Table: 10001, Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.1.1")}, "default via 10.0.1.1 table 10001"},
		{Route{Table: 10001, Destination: netip.MustParsePrefix("10.0.1.0/24")}, "10.0.1.0/24 scope link table 10001"},
		{Route{Table: 10001, Destination: netip.MustParsePrefix("::/0"), GatewayFromRA: true}, "default via <router advertisement> table 10001"},
	} {
		if s := tc.got.String(); s != tc.want {
			t.Errorf("%#v prints %q, want %q", tc.got, s, tc.want)
		}
	}
	rt := Route{Table: 10001, Destination: netip.MustParsePrefix("10.0.1.0/24")}
	if s := rt.On("ens6"); s != "10.0.1.0/24 dev ens6 scope link table 10001" {
		t.Errorf("On(ens6) = %q", s)
	}
}
