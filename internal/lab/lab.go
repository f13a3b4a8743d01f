// Package lab builds a simulated EC2 VPC out of network namespaces so the agent can be tested
// end to end against real network managers on a plain Linux box (as root).
//
// One lab is three namespaces and a handful of processes, all named <id>-... where id is
// Options.Name plus a random suffix:
//
//   - <id>-vpc: the VPC router. ENI slot N is veth vpcN = 10.99.N.1/24 (and fd00:99:0:N::1/64 on
//     a dual-stack subnet); 169.254.169.254 and/or fd00:ec2::254 (the fake IMDS, served
//     in-process), 198.51.100.1 and 2001:db8:ffff::1 (the "internet") live on its lo; dnsmasq hands
//     out each ENI's IMDS primary addresses by MAC (DHCPv4, and DHCPv6 with router advertisements);
//     nftables enforces the VPC source/destination check for both families.
//   - <id>-inst: the instance. A holder process owns a private mount+UTS namespace (/etc overlay,
//     private /run, read-only /sys) in which a private D-Bus system bus and the network manager run.
//   - <id>-pool: where detached ENIs wait. Attach moves the link into <id>-inst, as EC2 does.
//
// Nothing is created in the root network namespace and nothing ever talks to the host's
// 169.254.169.254.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ec2-net-utils/ec2-net-utils/internal/fakeimds"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// Addresses of the simulated VPC. They exist only inside the lab's vpc namespace.
const (
	IMDSAddr     = "169.254.169.254"
	internetAddr = "198.51.100.1" // TEST-NET-2: never routed anywhere real
	vpcCIDR      = "10.99.0.0/16"
	// maxSlot is the last ENI slot (subnet 10.99.N.0/24): 41 slots, enough for the scale
	// benchmark's 32 ENIs on two network cards plus spares to hot-attach. A slot is the lab's
	// subnet index only; the agent's tables follow device-number and network-card (core.TableFor).
	maxSlot = 40
)

// Options configure a lab.
type Options struct {
	// Name prefixes the namespaces and the directory; a random suffix is added. Default "lab".
	Name string
	// Dir is the lab directory (logs, leases, the instance's /run and /etc upper dir). It must not
	// exist; Close removes it. Default os.TempDir()/<id>.
	Dir string
	// Scenario seeds the fake IMDS: instance-id and the primary MAC. ENIs are published by
	// Attach. When MAC is empty, the first ENI added with device-number 0 on card 0 becomes primary.
	Scenario *scenario.Scenario
	// ENIs are added (and attached when ENISpec.Attached) before New returns.
	ENIs []ENISpec
	// IMDSEndpoints selects where the fake IMDS answers: 169.254.169.254 (default), also or only
	// [fd00:ec2::254].
	IMDSEndpoints IMDSEndpoints
	// Logf receives progress and timings, e.g. t.Logf. Default: discard.
	Logf func(format string, args ...any)
}

// Lab is one simulated VPC with one instance. Its methods are safe for concurrent use.
type Lab struct {
	id      string
	dir     string
	tmpLink string // symlink os.TempDir()/<id> -> dir when Dir was given, so Sweep finds it
	logf    func(format string, args ...any)

	vpcNS, instNS, poolNS string
	vpc, inst, pool       netns.NsHandle

	imds    *fakeimds.Server
	httpSrv *http.Server

	holder  *Process
	dbus    *Process
	dnsmasq *Process

	mu          sync.Mutex
	closed      bool
	procs       []*Process
	enis        map[string]*eni // by ENISpec.Name
	hosts       string          // last dnsmasq hosts file content
	manager     *Process
	managerKind string
}

// New builds a lab: namespaces, VPC router, fake IMDS, dnsmasq, source/destination check, the
// instance's holder and D-Bus, then Options.ENIs. On error everything created so far is removed.
func New(ctx context.Context, opts Options) (_ *Lab, err error) {
	start := time.Now()
	if opts.Name == "" {
		opts.Name = "lab"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	sc := opts.Scenario
	if sc == nil {
		sc = &scenario.Scenario{}
	}
	sc = sc.Clone()
	if sc.Interfaces == nil {
		sc.Interfaces = map[string]map[string]scenario.Value{}
	}
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("lab: random id: %w", err)
	}
	id := opts.Name + hex.EncodeToString(suffix)
	if sc.InstanceID == "" {
		sc.InstanceID = "i-0" + hex.EncodeToString(suffix) + "0000000000"
	}
	l := &Lab{
		id:     id,
		dir:    opts.Dir,
		logf:   opts.Logf,
		vpcNS:  id + "-vpc",
		instNS: id + "-inst",
		poolNS: id + "-pool",
		vpc:    netns.None(),
		inst:   netns.None(),
		pool:   netns.None(),
		enis:   map[string]*eni{},
	}
	if l.dir == "" {
		l.dir = filepath.Join(os.TempDir(), id)
	} else {
		l.tmpLink = filepath.Join(os.TempDir(), id)
	}
	if len(l.busSocket()) > 107 {
		return nil, fmt.Errorf("lab: dir %s too long: the D-Bus socket path must fit in 107 bytes", l.dir)
	}
	if err := os.Mkdir(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer func() {
		if err != nil {
			if cerr := l.Close(); cerr != nil {
				l.logf("lab %s: cleanup after failed New: %v", id, cerr)
			}
		}
	}()
	if err := l.writeOwner(); err != nil {
		return nil, err
	}
	if err := l.createNamespaces(ctx); err != nil {
		return nil, err
	}
	if err := l.setupVPC(opts.IMDSEndpoints); err != nil {
		return nil, err
	}
	l.imds = fakeimds.New(sc)
	if err := l.serveIMDS(opts.IMDSEndpoints); err != nil {
		return nil, err
	}
	if err := l.startHolder(ctx); err != nil {
		return nil, err
	}
	if err := l.startDBus(ctx); err != nil {
		return nil, err
	}
	// ENIs first, so dnsmasq starts with every host entry and needs no reload.
	for _, spec := range opts.ENIs {
		spec.Attached = false // attached below, once dnsmasq serves them
		if err := l.AddENI(spec); err != nil {
			return nil, err
		}
	}
	if err := l.startDnsmasq(ctx); err != nil {
		return nil, err
	}
	// Without ENIs nothing has loaded the source/destination check table yet.
	l.mu.Lock()
	err = l.syncSrcCheck(ctx)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, spec := range opts.ENIs {
		if spec.Attached {
			if err := l.Attach(spec.Name); err != nil {
				return nil, err
			}
		}
	}
	l.logf("lab %s: up in %v (dir %s)", id, time.Since(start).Round(time.Millisecond), l.dir)
	return l, nil
}

// ID is the lab's unique name, the prefix of its namespaces.
func (l *Lab) ID() string { return l.id }

// Dir is the lab directory on the host.
func (l *Lab) Dir() string { return l.dir }

// Namespaces lists the lab's network namespace names (vpc, instance, pool).
func (l *Lab) Namespaces() []string { return []string{l.vpcNS, l.instNS, l.poolNS} }

// IMDS is the fake IMDS the instance sees at 169.254.169.254. Change its scenario through
// UpdateIMDS, so the VPC's DHCP and source/destination check follow.
func (l *Lab) IMDS() *fakeimds.Server { return l.imds }

// InstanceNS is the instance's network namespace. The handle belongs to the lab: do not close it.
func (l *Lab) InstanceNS() netns.NsHandle { return l.inst }

// InstanceNetlink opens a netlink handle in the instance's network namespace; the caller closes it.
func (l *Lab) InstanceNetlink() (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(l.inst)
	if err != nil {
		return nil, fmt.Errorf("lab: netlink handle in %s: %w", l.instNS, err)
	}
	return h, nil
}

// InternetAddr is an address outside the VPC that answers pings, reached via the VPC router.
func (l *Lab) InternetAddr() string { return internetAddr }

// DHCPLog is what the VPC's dnsmasq logged (its DHCP and RA conversations), for a failing test's
// report: it tells a DISCOVER that never came from an offer that was never taken.
func (l *Lab) DHCPLog() string {
	if l.dnsmasq == nil {
		return ""
	}
	return l.dnsmasq.Log()
}

// BusAddress is the instance's private D-Bus system bus, reachable from the host.
func (l *Lab) BusAddress() string { return "unix:path=" + l.busSocket() }

func (l *Lab) busSocket() string { return filepath.Join(l.dir, "run", "dbus", "system_bus_socket") }

// WaitFor polls cond every 25 ms until it returns true, it returns an error (returned as is,
// wrapped), the timeout expires or ctx is done. The error names what.
func (l *Lab) WaitFor(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error)) error {
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("lab: waiting for %s: %w", what, err)
		}
		if ok {
			l.logf("lab %s: %s after %v", l.id, what, time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: waiting for %s: %w", what, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("lab: timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// Close stops everything the lab started, deletes its namespaces and removes its directory. It
// is idempotent. Only processes the lab started, and processes found inside its own namespaces,
// are signalled.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := append([]*Process(nil), l.procs...)
	l.mu.Unlock()

	start := time.Now()
	var errs []error
	if l.httpSrv != nil {
		_ = l.httpSrv.Close() // in-flight requests of a dying lab do not matter
	}
	// Managers and test processes first (they may still talk to the bus), the infrastructure last.
	var infra []*Process
	var users []*Process
	for _, p := range procs {
		if p == l.holder || p == l.dbus || p == l.dnsmasq {
			infra = append(infra, p)
		} else {
			users = append(users, p)
		}
	}
	stopAll(users)
	stopAll(infra)
	for _, name := range l.Namespaces() {
		if err := killNamespace(name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range []*netns.NsHandle{&l.vpc, &l.inst, &l.pool} {
		if h.IsOpen() {
			_ = h.Close()
		}
	}
	for _, name := range l.Namespaces() {
		if err := deleteNamespace(name); err != nil {
			errs = append(errs, err)
		}
	}
	if l.tmpLink != "" {
		if err := os.Remove(l.tmpLink); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("lab: %w", err))
		}
	}
	if err := os.RemoveAll(l.dir); err != nil {
		errs = append(errs, fmt.Errorf("lab: remove %s: %w", l.dir, err))
	}
	l.logf("lab %s: closed in %v", l.id, time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// stopAll stops processes concurrently; exit statuses of a lab being torn down do not matter.
func stopAll(ps []*Process) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { _ = p.Stop() })
	}
	wg.Wait()
}
