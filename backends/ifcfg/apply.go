package ifcfg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
	"github.com/ec2-net-utils/ec2-net-utils/internal/applyrun"
	"github.com/ec2-net-utils/ec2-net-utils/internal/atomicfile"
	"github.com/ec2-net-utils/ec2-net-utils/internal/logonce"
)

// Kernel is the part of netlink the backend uses; *netlinkx.Handle implements it.
type Kernel interface {
	SetUp(link core.Link) (bool, error)
	Rules(lo, hi int) ([]core.Rule, error)
	EnsureRules(want []core.Rule) ([]core.Rule, error)
	DeleteRules(rules []core.Rule) error
	SyncAddresses(link core.Link, want, owned []netip.Prefix) (added, removed []netip.Prefix, err error)
	RoutesInTable(table int) ([]core.Route, error)
	EnsureRoutes(link core.Link, routes []core.Route) ([]core.Route, error)
	DeleteRoutesInTable(table int) (int, error)
}

var _ Kernel = (*netlinkx.Handle)(nil)

// DHCP runs the ENIs' DHCP clients; *DHClient implements it.
type DHCP interface {
	// Args are the arguments a client for the spec runs with: a running client of ours with
	// other arguments is restarted.
	Args(ClientSpec) []string
	Find(iface string, fam core.Family) (Process, error)
	Start(ctx context.Context, s ClientSpec) error
	Stop(p Process) error
	RemoveFiles(iface string, fam core.Family) ([]string, error)
}

var _ DHCP = (*DHClient)(nil)

// Options configure a Backend. Zero fields take the defaults.
type Options struct {
	Dir             string // default DefaultDir
	DHClientConfDir string // default DefaultDHClientConfDir
	// StateDir is where the backend remembers, per interface, the ENI's MAC and table and the
	// secondary addresses it assigned (default DefaultStateDir).
	StateDir string
	// AssignPrefixAddresses is the configuration's [interfaces] assign_prefix_addresses, written
	// as EC2PROVISIONPFXIPS into generated ifcfg files. (The plan already applies it.)
	AssignPrefixAddresses bool
	// BroadcastRenewals: see Settings.
	BroadcastRenewals bool
	// Kernel applies rules, routes and addresses. Required.
	Kernel Kernel
	// DHCP runs dhclient. Required.
	DHCP   DHCP
	Logger hclog.Logger
	// DryRun computes what Apply would change and changes nothing: no file, no netlink request,
	// no dhclient started or stopped. Changes.Reloads counts the dhclients it would start.
	DryRun bool
}

// Backend configures ENIs for initscripts and dhclient. Apply calls are serialised.
type Backend struct {
	paths             Paths
	stateDir          string
	assignPrefix      bool
	broadcastRenewals bool
	kernel            Kernel
	dhcp              DHCP
	log               hclog.Logger
	exec              *applyrun.Executor

	mu sync.Mutex
	// noted remembers what was logged once: files left alone, knobs in effect, adopted dhclients.
	noted logonce.Notes
	// swept is set once the temporary files a killed write left are removed.
	swept bool
}

var _ core.Backend = (*Backend)(nil)

// New returns an ifcfg backend.
func New(opts Options) (*Backend, error) {
	if opts.Kernel == nil || opts.DHCP == nil {
		return nil, errors.New("ifcfg: a netlink handle and a DHCP client runner are required")
	}
	b := &Backend{
		paths:             Paths{Dir: opts.Dir, DHClientConfDir: opts.DHClientConfDir},
		stateDir:          opts.StateDir,
		assignPrefix:      opts.AssignPrefixAddresses,
		broadcastRenewals: opts.BroadcastRenewals,
		kernel:            opts.Kernel,
		dhcp:              opts.DHCP,
		log:               opts.Logger,
		exec:              applyrun.NewExecutor(opts.DryRun),
	}
	if b.paths.Dir == "" {
		b.paths.Dir = DefaultDir
	}
	if b.paths.DHClientConfDir == "" {
		b.paths.DHClientConfDir = DefaultDHClientConfDir
	}
	if b.stateDir == "" {
		b.stateDir = DefaultStateDir
	}
	if b.log == nil {
		b.log = hclog.NewNullLogger()
	}
	return b, nil
}

// Name implements core.Backend.
func (b *Backend) Name() string { return "ifcfg" }

// Actions returns what the last Apply did, or in a dry run would have done, in order.
func (b *Backend) Actions() []string { return b.exec.Actions() }

// knobs reads the 1.x knobs of every planned interface, once per Apply. Knobs count only in
// files the agent did not generate or that were edited since: the values in a generated file are
// the agent's own.
func (b *Backend) knobs(plan core.Plan) map[string]Knobs {
	knobs := map[string]Knobs{}
	for _, p := range plan.Interfaces {
		path := b.paths.FileName(KindIfcfg, p.Name)
		content, err := os.ReadFile(path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				b.log.Warn("cannot read 1.x settings", "iface", p.Name, "file", path, "error", err)
			}
			continue
		}
		if owner, _ := Ownership(content); owner == Generated {
			continue
		}
		k := ParseKnobs(content)
		if k == (Knobs{}) {
			continue
		}
		knobs[p.Name] = k
		if b.noted.Changed("knobs:"+p.Name, k.Describe()) {
			b.log.Info("1.x settings in the interface's ifcfg file apply", "iface", p.Name, "file", path, "settings", k.Describe())
		}
	}
	return knobs
}

// Apply implements core.Backend. For every planned ENI it writes the files that differ, makes the
// kernel match the plan (rules, ENI-table routes, secondary addresses) and keeps one dhclient per
// family running with the agent's script. For interfaces that are gone it stops their dhclient
// and removes their rules, table routes, lease, pid and generated files. An interface that is
// present but not planned (excluded, pending in IMDS) is left exactly as it is. A failure on one
// interface is reported and the others are still applied.
//
// The 1.x knobs in an interface's own ifcfg file win over the plan: MAINROUTETABLE and
// EC2PROVISIONPFXIPS change its plan, EC2SYNC=no leaves it alone (LeftAlone, naming the file).
// An interface whose IPv6 default route waits for a router advertisement is Deferred.
//
// Changes names files by path and what the backend changed in the kernel as "<iface>: rule …",
// "<iface>: address …", "<iface>: dhclient -4"; Reloads counts the dhclients it started.
func (b *Backend) Apply(ctx context.Context, plan core.Plan, links []core.Link) (core.Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.withPassKernel()() // passkernel.go: one rule dump per pass, not two per ENI
	b.exec.Begin()
	b.sweep()

	knobs := b.knobs(plan)
	adjusted := make(map[string]core.InterfacePlan, len(plan.Interfaces))
	tables := make(map[int]bool, len(plan.Interfaces))
	for _, p := range plan.Interfaces {
		if q, keep := knobs[p.Name].Apply(p); keep {
			adjusted[p.Name] = q
			tables[q.Table] = true
		}
	}
	return applyrun.Run(ctx, "ifcfg", plan, links, applyrun.Steps{
		Interface: func(ctx context.Context, p core.InterfacePlan, ch *core.Changes) core.InterfaceReport {
			q, ok := adjusted[p.Name]
			if !ok {
				return applyrun.LeftAlone("EC2SYNC=no in " + b.paths.FileName(KindIfcfg, p.Name))
			}
			if err := validName(q.Name); err != nil {
				return applyrun.Failed(err)
			}
			return b.applyInterface(ctx, q, tables, ch)
		},
		Detached: func(_ context.Context, present applyrun.Present, ch *core.Changes) error {
			return b.removeDetached(present.Names, tables, ch)
		},
		SkipUnchanged: true,
	})
}

// sweep removes, once, the temporary files a write killed midway left (issue #14).
func (b *Backend) sweep() {
	if b.swept || b.exec.DryRun() {
		return
	}
	b.swept = true
	for _, d := range []string{b.paths.Dir, b.paths.DHClientConfDir, b.stateDir} {
		removed, err := atomicfile.RemoveStale(d)
		if err != nil {
			b.log.Warn("cannot remove temporary files of an interrupted write", "dir", d, "error", err)
		}
		for _, f := range removed {
			b.log.Info("removed temporary file of an interrupted write", "file", f)
		}
	}
}

// ReasonRA is what an interface whose IPv6 default route in the ENI table waits for.
const ReasonRA = "IPv6 router advertisement"

// applyInterface configures one ENI: the kernel, the files that restore it, then DHCP.
func (b *Backend) applyInterface(ctx context.Context, p core.InterfacePlan, tables map[int]bool, ch *core.Changes) core.InterfaceReport {
	var errs []error
	st, err := b.loadState(p.Name)
	if err != nil {
		errs = append(errs, err)
	}
	if st.MAC != "" && st.MAC != p.MAC {
		// Another ENI had this name before: what the agent did for that one goes first.
		b.log.Debug("interface name now belongs to another ENI", "iface", p.Name, "old_mac", st.MAC, "mac", p.MAC)
		errs = append(errs, b.forget(p.Name, st, tables, false, ch))
		st = ifaceState{}
	}

	waitsRA := false
	errs = append(errs, b.exec.Do("sync-kernel", p.Name, func() error {
		var err error
		waitsRA, err = b.applyKernel(p, st, ch)
		return err
	}))
	// The files after the kernel: route6-<iface> names the IPv6 router the kernel just used.
	settings := Settings{ProvisionPrefixIPs: b.assignPrefix, BroadcastRenewals: b.broadcastRenewals, RARouter: b.raRouter(p)}
	errs = append(errs, b.writeFiles(p, Render(p, b.paths, settings), ch))
	// DHCP last: dhclient reads dhclient-<iface>.conf.
	if !p.Primary {
		errs = append(errs, b.ensureDHCP(ctx, p, ch))
	}
	want := ifaceState{MAC: p.MAC, Table: p.Table, Addresses: p.Addresses}
	if err := b.saveState(p.Name, want); err != nil {
		errs = append(errs, err)
	}
	if waitsRA {
		b.log.Debug("IPv6 default route waits for a router advertisement", "iface", p.Name)
		return applyrun.Deferred(ReasonRA, errors.Join(errs...))
	}
	return applyrun.Configured(errors.Join(errs...))
}

// applyKernel makes the ENI's rules, table routes and secondary addresses match the plan.
// waitsRA reports a route that waits for a router advertisement: not an error.
func (b *Backend) applyKernel(p core.InterfacePlan, st ifaceState, ch *core.Changes) (waitsRA bool, err error) {
	var errs []error
	link := core.Link{Name: p.Name, Index: p.Index, MAC: p.MAC}
	if !p.Primary {
		// Routes need the link up, and the agent adds them before dhclient would bring it up.
		if up, err := b.kernel.SetUp(link); err != nil {
			errs = append(errs, fmt.Errorf("ifcfg: %s: %w", p.Name, err))
		} else if up {
			ch.Written = append(ch.Written, p.Name+": link up")
		}
	}
	errs = append(errs, b.syncRules(p, ch))
	replaced, err := b.kernel.EnsureRoutes(link, p.Routes)
	for _, r := range replaced {
		ch.Written = append(ch.Written, fmt.Sprintf("%s: route %s", p.Name, r))
	}
	waitsRA, err = netlinkx.SplitRAWait(err)
	if err != nil {
		errs = append(errs, fmt.Errorf("ifcfg: %s: %w", p.Name, err))
	}
	if _, err := applyrun.SyncAddresses(b.kernel, p, st.Addresses, ch); err != nil {
		errs = append(errs, fmt.Errorf("ifcfg: %w", err))
	}
	return waitsRA, errors.Join(errs...)
}

// syncRules adds the plan's rules and removes ours at the ENI's priority that the plan no longer
// has (see applyrun.SyncRules).
func (b *Backend) syncRules(p core.InterfacePlan, ch *core.Changes) error {
	if err := applyrun.SyncRules(b.kernel, p, ch); err != nil {
		return fmt.Errorf("ifcfg: %w", err)
	}
	return nil
}

// raRouter is the IPv6 gateway of the ENI table's default route as the kernel has it, for
// route6-<iface>; zero while no router advertisement has been seen.
func (b *Backend) raRouter(p core.InterfacePlan) netip.Addr {
	if !p.IPv6 {
		return netip.Addr{}
	}
	routes, err := b.kernel.RoutesInTable(p.Table)
	if err != nil {
		return netip.Addr{}
	}
	for _, r := range routes {
		if r.Destination.Bits() == 0 && r.Gateway.Is6() && r.Gateway.IsLinkLocalUnicast() {
			return r.Gateway
		}
	}
	return netip.Addr{}
}

// ensureDHCP keeps one dhclient per family the ENI's subnet has. A dhclient someone else started
// for the interface (initscripts at boot) is adopted as it is; one of ours running with other
// parameters (MAINROUTETABLE changed) is restarted, which keeps the address: SIGTERM leaves it,
// and the new dhclient renews the same lease.
func (b *Backend) ensureDHCP(ctx context.Context, p core.InterfacePlan, ch *core.Changes) error {
	var errs []error
	for _, fam := range []core.Family{core.IPv4, core.IPv6} {
		wanted := (fam == core.IPv4 && p.IPv4) || (fam == core.IPv6 && p.IPv6)
		spec := ClientSpec{Iface: p.Name, Family: fam, Metric: p.Metric, MainDefault: p.MainDefaultRoute, MTU: p.MTU}
		what := fmt.Sprintf("%s: dhclient -%d", p.Name, fam)
		proc, err := b.dhcp.Find(p.Name, fam)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !wanted:
			if proc.Pid > 0 && proc.Ours {
				errs = append(errs, b.stopDHCP(p.Name, fam, proc, what, ch))
			}
		case proc.Pid > 0 && !proc.Ours:
			if b.noted.Changed("adopted:"+what, fmt.Sprint(proc.Pid)) {
				b.log.Info("DHCP client started by someone else serves the ENI; leaving it", "iface", p.Name,
					"pid", proc.Pid, "args", strings.Join(proc.Args, " "))
			}
		case proc.Pid > 0 && slices.Equal(proc.Args, b.dhcp.Args(spec)):
		default:
			if err := b.exec.Do("start", what, func() error {
				if proc.Pid > 0 {
					if err := b.dhcp.Stop(proc); err != nil {
						return err
					}
				}
				return b.dhcp.Start(ctx, spec)
			}); err != nil {
				errs = append(errs, err)
				continue
			}
			ch.Reloads++
			ch.Written = append(ch.Written, what)
			b.log.Debug("started dhclient", "iface", p.Name, "family", fam, "restart", proc.Pid > 0)
		}
	}
	return errors.Join(errs...)
}

func (b *Backend) stopDHCP(iface string, fam core.Family, proc Process, what string, ch *core.Changes) error {
	if err := b.exec.Do("stop", what, func() error { return b.dhcp.Stop(proc) }); err != nil {
		return err
	}
	ch.Removed = append(ch.Removed, what)
	return b.removeDHCPFiles(iface, fam, ch)
}

// removeDHCPFiles removes the pid and lease files of the interface's dhclient for fam.
func (b *Backend) removeDHCPFiles(iface string, fam core.Family, ch *core.Changes) error {
	return b.exec.Do("remove-dhclient-files", fmt.Sprintf("%s -%d", iface, fam), func() error {
		files, err := b.dhcp.RemoveFiles(iface, fam)
		ch.Removed = append(ch.Removed, files...)
		return err
	})
}

// removeDetached cleans up after interfaces that are gone: those the agent remembers (state) or
// still has generated files for. Nothing is reloaded: dhclient is only stopped.
func (b *Backend) removeDetached(present map[string]bool, tables map[int]bool, ch *core.Changes) error {
	known, err := b.knownInterfaces()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, iface := range known {
		if present[iface] {
			continue
		}
		st, err := b.loadState(iface)
		if err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, b.forget(iface, st, tables, true, ch))
	}
	return errors.Join(errs...)
}

// forget undoes what the agent did for an interface: stops its dhclients (dhclient does not exit
// when its link goes away), removes their pid and lease files, the rules and routes of its table
// unless the plan uses that table for another link now, and, with files, its generated files.
// Edited files stay: they are the administrator's.
func (b *Backend) forget(iface string, st ifaceState, tables map[int]bool, files bool, ch *core.Changes) error {
	var errs []error
	for _, fam := range []core.Family{core.IPv4, core.IPv6} {
		proc, err := b.dhcp.Find(iface, fam)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if proc.Pid > 0 {
			errs = append(errs, b.stopDHCP(iface, fam, proc, fmt.Sprintf("%s: dhclient -%d", iface, fam), ch))
		} else {
			errs = append(errs, b.removeDHCPFiles(iface, fam, ch))
		}
	}
	if st.Table > 0 && !tables[st.Table] {
		errs = append(errs, b.exec.Do("flush-table", fmt.Sprint(st.Table), func() error { return b.flushTable(iface, st.Table, ch) }))
	}
	if files {
		for _, k := range Kinds {
			errs = append(errs, b.removeGenerated(iface, b.paths.FileName(k, iface), ch))
		}
	}
	// The state goes last and only when everything else went: it is how the next pass knows
	// there is still something to clean up (a dhclient that would not stop, say).
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return b.exec.Do("remove", b.statePath(iface), func() error {
		if err := os.Remove(b.statePath(iface)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ifcfg: %w", err)
		}
		return nil
	})
}

// flushTable removes our rules into an ENI table that is no longer planned, then its routes.
func (b *Backend) flushTable(iface string, table int, ch *core.Changes) error {
	var errs []error
	if err := applyrun.DeleteTableRules(b.kernel, iface, table, ch); err != nil {
		errs = append(errs, fmt.Errorf("ifcfg: %w", err))
	}
	n, err := b.kernel.DeleteRoutesInTable(table)
	if n > 0 {
		ch.Removed = append(ch.Removed, fmt.Sprintf("%s: %d routes of table %d", iface, n, table))
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("ifcfg: %s: %w", iface, err))
	}
	return errors.Join(errs...)
}

// knownInterfaces are the interfaces with state or generated (unedited) files.
func (b *Backend) knownInterfaces() ([]string, error) {
	seen := map[string]bool{}
	var errs []error
	if entries, err := os.ReadDir(b.stateDir); err == nil {
		for _, e := range entries {
			if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && e.Type().IsRegular() && validName(name) == nil {
				seen[name] = true
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("ifcfg: %w", err))
	}
	scan := func(dir string, match func(name string) bool) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("ifcfg: %w", err))
			}
			return
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !match(e.Name()) {
				continue
			}
			if owner, iface := b.owner(filepath.Join(dir, e.Name())); owner == Generated && validName(iface) == nil {
				seen[iface] = true
			}
		}
	}
	scan(b.paths.Dir, func(name string) bool {
		for _, k := range Kinds {
			if k != KindDHClient && strings.HasPrefix(name, string(k)+"-") {
				return true
			}
		}
		return false
	})
	scan(b.paths.DHClientConfDir, func(name string) bool {
		return strings.HasPrefix(name, "dhclient-") && strings.HasSuffix(name, ".conf")
	})
	out := make([]string, 0, len(seen))
	for iface := range seen {
		out = append(out, iface)
	}
	slices.Sort(out)
	return out, errors.Join(errs...)
}

// writeFiles writes the interface's files whose content differs and removes its generated files
// the plan no longer produces. Files that are not the agent's to change are left alone.
func (b *Backend) writeFiles(p core.InterfacePlan, files []File, ch *core.Changes) error {
	var errs []error
	want := map[string]bool{}
	for _, f := range files {
		want[f.Path] = true
		owner, iface, current := b.read(f.Path)
		switch {
		case current == nil:
		case owner == Generated && iface == p.Name:
			if bytes.Equal(current, f.Content) {
				continue
			}
		default:
			if b.noted.Changed("left:"+f.Path, owner.String()) {
				b.log.Info("file not written: it is not the agent's to change (delete it to let the agent manage it)",
					"iface", p.Name, "file", f.Path, "owner", owner.String())
			}
			continue
		}
		if err := b.write(f.Path, f.Content); err != nil {
			errs = append(errs, fmt.Errorf("ifcfg: %s: write %s: %w", p.Name, f.Path, err))
			continue
		}
		ch.Written = append(ch.Written, f.Path)
		b.log.Debug("wrote", "iface", p.Name, "file", f.Path, "dry_run", b.exec.DryRun())
	}
	for _, k := range Kinds {
		// The primary ENI's ifcfg and dhclient configuration are the image's: never removed.
		if p.Primary && (k == KindIfcfg || k == KindDHClient) {
			continue
		}
		if path := b.paths.FileName(k, p.Name); !want[path] {
			errs = append(errs, b.removeGenerated(p.Name, path, ch))
		}
	}
	return errors.Join(errs...)
}

// removeGenerated removes path if the agent generated it for iface and nobody edited it since.
func (b *Backend) removeGenerated(iface, path string, ch *core.Changes) error {
	if owner, forIface, content := b.read(path); content == nil || owner != Generated || forIface != iface {
		return nil
	}
	if err := b.exec.Do("remove", path, func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ifcfg: %s: remove %s: %w", iface, path, err)
		}
		return nil
	}); err != nil {
		return err
	}
	ch.Removed = append(ch.Removed, path)
	b.log.Debug("removed", "iface", iface, "file", path, "dry_run", b.exec.DryRun())
	return nil
}

// read returns a regular file's owner, the interface its marker names and its content; content
// is nil when there is no regular file (a symlink or directory counts as foreign and non-empty).
func (b *Backend) read(path string) (Owner, string, []byte) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Foreign, "", nil
	}
	if !fi.Mode().IsRegular() {
		return Foreign, "", []byte{}
	}
	content, err := os.ReadFile(path)
	if err != nil {
		return Foreign, "", []byte{}
	}
	owner, iface := Ownership(content)
	return owner, iface, content
}

func (b *Backend) owner(path string) (Owner, string) {
	owner, iface, content := b.read(path)
	if content == nil {
		return Foreign, ""
	}
	return owner, iface
}

// ifaceState is what the agent remembers about an interface between passes and restarts.
type ifaceState struct {
	MAC   string `json:"mac"`
	Table int    `json:"table"`
	// Addresses are the secondary addresses the agent assigned: the only ones it ever removes.
	Addresses []netip.Prefix `json:"addresses"`
}

func (b *Backend) statePath(iface string) string { return filepath.Join(b.stateDir, iface+".json") }

func (b *Backend) loadState(iface string) (ifaceState, error) {
	var st ifaceState
	content, err := os.ReadFile(b.statePath(iface))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("ifcfg: %w", err)
	}
	if err := json.Unmarshal(content, &st); err != nil {
		// A broken state file forgets the addresses to remove later; it must not stop the ENI.
		return ifaceState{}, fmt.Errorf("ifcfg: %s: %w", b.statePath(iface), err)
	}
	return st, nil
}

func (b *Backend) saveState(iface string, st ifaceState) error {
	if st.Addresses == nil {
		st.Addresses = []netip.Prefix{}
	}
	content, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("ifcfg: %w", err)
	}
	content = append(content, '\n')
	if !atomicfile.Differs(b.statePath(iface), content) {
		return nil
	}
	if err := b.write(b.statePath(iface), content); err != nil {
		return fmt.Errorf("ifcfg: %s: %w", b.statePath(iface), err)
	}
	return nil
}

// write replaces a file with content (the caller compared it already).
func (b *Backend) write(path string, content []byte) error {
	return b.exec.Do("write", path, func() error {
		_, err := atomicfile.Write(path, content)
		return err
	})
}

// validName rejects names that cannot be a link and would escape the directories.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/ \t\n") {
		return fmt.Errorf("ifcfg: invalid interface name %q", name)
	}
	return nil
}
