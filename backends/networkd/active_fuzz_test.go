package networkd

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
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
	// The goldens' drop-ins are key=value text too (Destination=, Gateway=, Table=), and their
	// paths are the files NETWORK_FILE= names: each file of each golden is a seed, as is each
	// golden whole (a state file with sections and "==>" lines in it).
	for _, g := range goldenDropins(f) {
		f.Add(g.whole, g.paths[0])
		for i, path := range g.paths {
			f.Add(g.files[i], path)
		}
	}
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

// goldenDropin is one golden of testdata: whole, and split into its files with their paths
// under /run/systemd/network.
type goldenDropin struct {
	whole []byte
	paths []string
	files [][]byte
}

// goldenDropins reads testdata/*.golden, which hold each rendered file after a "==> name <=="
// line. A golden that cannot be read fails the fuzz target: a corpus silently without them
// would test less than it claims.
func goldenDropins(f *testing.F) []goldenDropin {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no goldens in testdata: %v", err)
	}
	var out []goldenDropin
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatalf("read golden: %v", err)
		}
		g := goldenDropin{whole: b}
		for line := range bytes.Lines(b) {
			if file, ok := strings.CutPrefix(strings.TrimSpace(string(line)), "==> "); ok {
				file = strings.TrimSuffix(file, " <==")
				g.paths = append(g.paths, path.Join("/run/systemd/network", file))
				g.files = append(g.files, nil)
				continue
			}
			if len(g.files) > 0 {
				g.files[len(g.files)-1] = append(g.files[len(g.files)-1], line...)
			}
		}
		if len(g.paths) == 0 {
			f.Fatalf("golden %s: no \"==> name <==\" line", name)
		}
		out = append(out, g)
	}
	return out
}
