package lab

import (
	"fmt"
)

// Scale describes a large instance for the scale benchmark: ENIs attached at boot, each with IPs
// private IPv4 addresses (the primary one included) and Prefixes delegated /28 IPv4 prefixes, and
// Spares more ENIs of the same shape left in the pool to hot-attach.
type Scale struct {
	ENIs, IPs, Prefixes, Spares int
}

// Limits of one slot's /24: addresses from .10 (.1-.3 are the VPC's), prefixes from .64 up to
// .255, so no address lies inside a prefix and the source check's rules stay unambiguous.
const (
	scaleFirstIP     = 10
	scaleMaxIPs      = 64 - scaleFirstIP - 1 // one left below the prefixes for a benchmark to add
	scaleFirstPrefix = 64
	scaleMaxPrefixes = (256 - scaleFirstPrefix) / 16
	// scaleCardSize is how many ENIs one network card takes before the instance needs a second
	// one: 15, as on the largest single-card EC2 types.
	scaleCardSize = 15
)

// ScaleENIs generates the ENIs of s: slot i is ens<5+i> with MAC 02:00:00:99:<i>:01, addresses
// 10.99.i.10 upwards and prefixes 10.99.i.64/28 upwards. Up to 15 ENIs sit on card 0 with device
// numbers 0..n-1; beyond that the attached ENIs are split over two network cards as EC2 does on
// multi-card types (the first half on card 0, the rest on card 1, each card numbering its devices
// from 0), so tables and priorities are 10000+device and 10100+device, as amazon-ec2-net-utils
// 2.x numbers them. Spares continue the last card's device numbers. The first s.ENIs are marked
// Attached; the first is the primary ENI (card 0, device 0).
func ScaleENIs(s Scale) ([]ENISpec, error) {
	switch {
	case s.ENIs < 1:
		return nil, fmt.Errorf("lab: scale: %d ENIs: at least the primary is needed", s.ENIs)
	case s.ENIs+s.Spares > maxSlot+1 || s.Spares < 0:
		return nil, fmt.Errorf("lab: scale: %d ENIs + %d spares: the lab has %d slots", s.ENIs, s.Spares, maxSlot+1)
	case s.IPs < 1 || s.IPs > scaleMaxIPs:
		return nil, fmt.Errorf("lab: scale: %d IPs per ENI: 1..%d fit a slot's subnet", s.IPs, scaleMaxIPs)
	case s.Prefixes < 0 || s.Prefixes > scaleMaxPrefixes:
		return nil, fmt.Errorf("lab: scale: %d prefixes per ENI: 0..%d fit a slot's subnet", s.Prefixes, scaleMaxPrefixes)
	}
	onCard0 := s.ENIs
	if s.ENIs > scaleCardSize {
		onCard0 = (s.ENIs + 1) / 2
	}
	specs := make([]ENISpec, 0, s.ENIs+s.Spares)
	for i := range s.ENIs + s.Spares {
		card, dev := 0, i
		if i >= onCard0 && s.ENIs > scaleCardSize {
			card, dev = 1, i-onCard0
		}
		spec := ENISpec{
			Slot:         i,
			Name:         fmt.Sprintf("ens%d", 5+i),
			MAC:          fmt.Sprintf("02:00:00:99:%02x:01", i),
			DeviceNumber: dev,
			NetworkCard:  card,
			Attached:     i < s.ENIs,
		}
		for a := range s.IPs {
			spec.PrivateIPs = append(spec.PrivateIPs, fmt.Sprintf("10.99.%d.%d", i, scaleFirstIP+a))
		}
		for p := range s.Prefixes {
			spec.IPv4Prefixes = append(spec.IPv4Prefixes, fmt.Sprintf("10.99.%d.%d/28", i, scaleFirstPrefix+16*p))
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// ScaleIP is the a-th (from 0) private address ScaleENIs gives the ENI in slot: what a benchmark
// adds as one more secondary IP is ScaleIP(slot, s.IPs).
func ScaleIP(slot, a int) string { return fmt.Sprintf("10.99.%d.%d", slot, scaleFirstIP+a) }
