package imds

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// FuzzListLines: a directory listing splits into clean names (no blank, no white space around,
// no trailing "/"), and the names printed one per line list the same again.
func FuzzListLines(f *testing.F) {
	for _, seed := range []string{
		"02:00:00:00:05:05/\n02:00:00:00:06:06/",
		"device-number\ninterface-id\nipv4-prefix\nlocal-hostname\nlocal-ipv4s\nmac\nnetwork-card\nsubnet-ipv4-cidr-block\nvpc-ipv4-cidr-blocks",
		"02:00:00:00:05:05/\r\n \n/\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		names := listLines(body)
		for _, n := range names {
			if n == "" || n != strings.TrimSpace(n) || strings.HasSuffix(n, "/") || strings.Contains(n, "\n") {
				t.Fatalf("listLines(%q) gave the name %q", body, n)
			}
			_ = normMAC(n)
		}
		if again := listLines(strings.Join(names, "\n")); !slices.Equal(names, again) {
			t.Fatalf("names %q list as %q when printed", names, again)
		}
	})
}

// FuzzBoundedBody: a body up to MaxBodyBytes reads whole; a longer one fails with
// ErrBodyTooLarge after at most one byte past the cap.
func FuzzBoundedBody(f *testing.F) {
	f.Add([]byte("10.0.0.5\n10.0.0.9\n"), uint32(1))
	f.Add([]byte("x"), uint32(MaxBodyBytes))
	f.Add([]byte("x"), uint32(MaxBodyBytes+1))
	f.Add([]byte("1234567\n"), uint32(100_000))
	f.Fuzz(func(t *testing.T, chunk []byte, repeat uint32) {
		repeat %= 4 * MaxBodyBytes // bodies up to a few times the cap, however long chunk is
		if len(chunk) > 0 && int64(len(chunk))*int64(repeat) > 4*MaxBodyBytes {
			repeat = uint32(4 * MaxBodyBytes / len(chunk))
		}
		body := bytes.Repeat(chunk, int(repeat))
		got, err := io.ReadAll(&boundedBody{ReadCloser: io.NopCloser(bytes.NewReader(body))})
		if len(body) <= MaxBodyBytes {
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("%d-byte body: read %d bytes, err %v", len(body), len(got), err)
			}
			return
		}
		if !errors.Is(err, ErrBodyTooLarge) || len(got) > MaxBodyBytes+1 {
			t.Fatalf("%d-byte body: read %d bytes, err %v; want ErrBodyTooLarge within the cap", len(body), len(got), err)
		}
	})
}
