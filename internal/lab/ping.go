package lab

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"

	"github.com/ec2-net-utils/ec2-net-utils/internal/netnsx"
)

// Ping sends one ICMP (or ICMPv6) echo from inside the instance, from source address src to dst,
// and waits up to 1 s for the reply — `ping -c1 -W1 -I src dst` (ping -6 for IPv6), without
// needing iputils. Binding the source address makes the kernel route it like ping does, policy
// rules (`from src`) included.
func (l *Lab) Ping(ctx context.Context, src, dst string) error { return ping(ctx, l.inst, src, dst) }

// ping sends the echo from inside ns, which must be one of the lab's (never the caller's own).
func ping(ctx context.Context, ns netns.NsHandle, src, dst string) error {
	if !ns.IsOpen() {
		return errors.New("lab: ping: no namespace to ping from")
	}
	s, err := netip.ParseAddr(src)
	if err != nil {
		return fmt.Errorf("lab: ping: source %q is not an IP address", src)
	}
	d, err := netip.ParseAddr(dst)
	if err != nil || d.Is4() != s.Is4() {
		return fmt.Errorf("lab: ping: destination %q is not an address of the source's family", dst)
	}
	// ICMP and ICMPv6 differ in the protocol, the echo types and the length of the IP header that
	// an error message quotes; the kernel fills in the ICMPv6 checksum itself.
	network, request, reply, unreachable, quoted := "ip4:icmp", byte(8), byte(0), byte(3), 20
	if s.Is6() {
		network, request, reply, unreachable, quoted = "ip6:ipv6-icmp", 128, 129, 1, 40
	}
	var conn *net.IPConn
	err = netnsx.Do(ns, func() error {
		var err error
		conn, err = net.ListenIP(network, &net.IPAddr{IP: s.AsSlice()})
		return err
	})
	if err != nil {
		return fmt.Errorf("lab: ping from %s: %w", src, err)
	}
	defer conn.Close()

	var idSeq [4]byte
	if _, err := rand.Read(idSeq[:]); err != nil {
		return fmt.Errorf("lab: ping: %w", err)
	}
	req := echo(request, idSeq, []byte("ec2-net-utils lab"))
	deadline := time.Now().Add(time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("lab: ping: %w", err)
	}
	if _, err := conn.WriteTo(req, &net.IPAddr{IP: d.AsSlice()}); err != nil {
		return fmt.Errorf("lab: ping %s from %s: %w", dst, src, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				return fmt.Errorf("lab: ping %s from %s: no reply within 1s", dst, src)
			}
			return fmt.Errorf("lab: ping %s from %s: %w", dst, src, err)
		}
		// A raw socket sees every ICMP packet to src; keep only the reply to this echo.
		if n < 8 {
			continue
		}
		switch buf[0] {
		case reply:
			if from.String() == d.String() && [4]byte(buf[4:8]) == idSeq {
				return nil
			}
		case unreachable: // quoting our IP header + echo header; any router may send it
			if n >= 8+quoted+8 && [4]byte(buf[8+quoted+4:8+quoted+8]) == idSeq {
				return fmt.Errorf("lab: ping %s from %s: destination unreachable from %s (code %d)", dst, src, from, buf[1])
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// echo builds an ICMP message of type typ with identifier+sequence idSeq.
func echo(typ byte, idSeq [4]byte, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	b[0] = typ
	copy(b[4:8], idSeq[:])
	copy(b[8:], payload)
	binary.BigEndian.PutUint16(b[2:4], checksum(b))
	return b
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
