package networkd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
	"github.com/ec2-net-utils/ec2-net-utils/internal/applyrun"
	"github.com/ec2-net-utils/ec2-net-utils/internal/atomicfile"
)

// Kernel is the part of netlink the backend uses for ENIs whose rules and addresses the kernel
// carries (KernelCarried); *netlinkx.Handle implements it.
type Kernel interface {
	applyrun.RuleKernel
	applyrun.AddressKernel
	// Addresses lists the link's global addresses: checkLeases looks for the DHCPv4 one.
	Addresses(link core.Link) ([]netip.Prefix, error)
}

var _ Kernel = (*netlinkx.Handle)(nil)

// reasonReconfiguring is what an ENI whose files a reload just changed waits for: networkd drops
// the addresses it did not configure when it reconfigures the link, and may do so after the
// reload returned, so the next pass checks the agent's addresses again.
const reasonReconfiguring = "systemd-networkd reconfiguring the link"

// kernelWork is an ENI whose rules and addresses Apply puts into the kernel after the reload.
type kernelWork struct {
	p      core.InterfacePlan
	record string // absolute path of its KernelRecord
	// reconfigured: this pass changed its files, so networkd reconfigures the link.
	reconfigured bool
	// release: the ENI has no IPv6 any more, so its files carry everything again; what the
	// record (read before Apply removed it, into owned) lists and the plan no longer has goes.
	release bool
	owned   []netip.Prefix
}

// syncKernel makes the kernel hold the ENI's source rules and secondary addresses, removing
// those of ours the plan no longer has: rules by the numbering that makes them ours, addresses
// by the record of what the agent added (the DHCPv6 address, a container runtime's addresses
// are never in it). The record is rewritten when it changes; networkd does not read it, so it
// costs no reload.
func (b *Backend) syncKernel(w kernelWork, ch *core.Changes) error {
	if b.kernel == nil && !b.exec.DryRun() {
		return errors.New("networkd: no netlink handle for the source rules and addresses of an ENI with IPv6")
	}
	p := w.p
	errs := []error{}
	if err := b.exec.Do("sync-rules", p.Name, func() error { return applyrun.SyncRules(b.kernel, p, ch) }); err != nil {
		errs = append(errs, fmt.Errorf("networkd: %w", err))
	}
	owned := w.owned
	if !w.release {
		var err error
		if owned, err = readRecord(w.record); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	record := p.Addresses
	err := b.exec.Do("sync-addresses", p.Name, func() error {
		var err error
		record, err = applyrun.SyncAddresses(b.kernel, p, owned, ch)
		return err
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("networkd: %w", err))
	}
	if w.release {
		return errors.Join(errs...)
	}
	errs = append(errs, b.writeRecord(w.record, p, record))
	return errors.Join(errs...)
}

// writeRecord writes the ENI's KernelRecord if its content changed, without making a reload due.
func (b *Backend) writeRecord(name string, p core.InterfacePlan, addrs []netip.Prefix) error {
	content := recordText(p, addrs)
	if !atomicfile.Differs(name, content) {
		return nil
	}
	return b.exec.Do("write", name, func() error {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return fmt.Errorf("networkd: %w", err)
		}
		if _, err := atomicfile.Write(name, content); err != nil {
			return fmt.Errorf("networkd: write %s: %w", name, err)
		}
		return nil
	})
}

// recordText is a KernelRecord: the marker line, then one "Address=" line per address.
func recordText(p core.InterfacePlan, addrs []netip.Prefix) []byte {
	ids := p.MAC
	if p.InterfaceID != "" {
		ids = p.InterfaceID + ", " + p.MAC
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s%s (%s).\n", marker, p.Name, ids)
	b.WriteString("# Not read by systemd-networkd. The ENI has IPv6, so the agent keeps its source rules\n")
	fmt.Fprintf(&b, "# (ip rule, priority %d) and these secondary addresses in the kernel itself: a reload\n", p.Priority)
	b.WriteString("# that changed its files would restart DHCPv6 on it. See docs/backends.md.\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "Address=%s\n", a)
	}
	return b.Bytes()
}

// recordToRelease returns the addresses of an ENI's record when the ENI has no IPv6 any more
// (its files carry everything again, and Apply removes the record): ok is false without one.
func recordToRelease(p core.InterfacePlan, name string) (owned []netip.Prefix, ok bool, err error) {
	if KernelCarried(p) {
		return nil, false, nil
	}
	if _, err := os.Stat(name); err != nil {
		return nil, false, nil
	}
	owned, err = readRecord(name)
	return owned, err == nil, err
}

// readRecord returns the addresses a KernelRecord lists; none when there is no record.
func readRecord(name string) ([]netip.Prefix, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("networkd: %w", err)
	}
	var out []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Address=")
		if !ok {
			continue
		}
		a, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("networkd: %s: %w", name, err)
		}
		out = append(out, a)
	}
	return out, nil
}
