package networkd

import (
	"strings"
	"testing"
)

// FuzzStateValue: any link state file parses without panic; NETWORK_FILE= printed at its start is
// read back as printed, and so is NETWORK_FILE= appended to a file that has none (however long
// the lines before it are).
func FuzzStateValue(f *testing.F) {
	state := "# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\n" +
		"CARRIER_STATE=carrier\nADDRESS_STATE=routable\nIPV4_ADDRESS_STATE=routable\n" +
		"IPV6_ADDRESS_STATE=degraded\nONLINE_STATE=online\nREQUIRED_FOR_ONLINE=yes\n" +
		"REQUIRED_OPER_STATE_FOR_ONLINE=degraded:routable\nREQUIRED_FAMILY_FOR_ONLINE=any\n" +
		"ACTIVATION_POLICY=up\nNETWORK_FILE=/run/systemd/network/70-ens6.network\n" +
		"NETWORK_FILE_DROPINS=\"/run/systemd/network/70-ens6.network.d/ec2.conf\"\nDNS=10.0.0.2\nNTP=\nSIP=\n" +
		"DOMAINS=\nROUTE_DOMAINS=\nLLMNR=yes\nMDNS=no\n"
	f.Add([]byte(state), "/etc/systemd/network/10-netplan-ens6.network")
	f.Add([]byte("NETWORK_FILE='/run/x.network'\n"), "/lib/systemd/network/80-ec2.network")
	f.Add([]byte("DNS="+strings.Repeat("10.0.0.2 ", 8000)+"\n"), "/run/systemd/network/70-ens7.network")
	f.Add([]byte(""), "\"quoted\"")
	f.Fuzz(func(t *testing.T, data []byte, file string) {
		_ = stateValue(data, "NETWORK_FILE")
		if file != strings.TrimSpace(file) || strings.ContainsAny(file, "\r\n") || quoted(file) {
			return // not something the printed form can carry
		}
		if got := stateValue([]byte("NETWORK_FILE="+file+"\n"+string(data)), "NETWORK_FILE"); got != file {
			t.Fatalf("NETWORK_FILE=%s first reads as %q", file, got)
		}
		if strings.Contains(string(data), "NETWORK_FILE") {
			return
		}
		if got := stateValue([]byte(string(data)+"\nNETWORK_FILE="+file+"\n"), "NETWORK_FILE"); got != file {
			t.Fatalf("NETWORK_FILE=%s appended reads as %q", file, got)
		}
	})
}

func quoted(v string) bool {
	return len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0]
}
