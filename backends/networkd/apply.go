package networkd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/applyrun"
	"github.com/ec2-net-utils/ec2-net-utils/internal/atomicfile"
)

// DefaultDir is where the backend writes: tmpfs, so every boot starts from the packaged base and
// the agent's first reconcile, and files in /etc/systemd/network of the same name win over ours.
const DefaultDir = "/run/systemd/network"

// Options configure a Backend. Zero fields take the defaults.
type Options struct {
	// Dir receives the generated files (default DefaultDir).
	Dir string
	// StateDir holds networkd's link state files (default DefaultStateDir).
	StateDir string
	// NetworkFiles, when set, replaces the StateDir lookup of each link's active .network file.
	NetworkFiles NetworkFiles
	// Reloader makes networkd re-read its files. Required: Apply fails when a reload is due
	// and there is none.
	Reloader Reloader
	// Kernel puts the source rules and secondary addresses of ENIs with IPv6 into the kernel
	// (see KernelCarried). Needed only for plans with IPv6.
	Kernel Kernel
	Logger hclog.Logger
	// DryRun computes what Apply would change (for `apply --dry-run` and `plan`) and changes
	// nothing: no file written or removed, no reload. Changes.Reloads counts the reload it would do.
	DryRun bool
}

// Backend configures ENIs through systemd-networkd. It is safe for concurrent use; Apply calls
// are serialised because they share one directory.
type Backend struct {
	dir      string
	files    NetworkFiles
	reloader Reloader
	kernel   Kernel
	log      hclog.Logger
	exec     *applyrun.Executor

	mu sync.Mutex
	// reloadDue survives a failed (or cancelled) reload: the files are on disk already, so the
	// next Apply finds nothing to write and would otherwise never tell networkd about them.
	reloadDue bool
	// swept is set once the temporary files a killed write left in dir are removed.
	swept bool
	// leases are the ENIs (by MAC) whose DHCPv4 address networkd has yet to put on the link
	// after a reload changed their files (see checkLeases).
	leases map[string]leaseWait
	now    func() time.Time
}

var _ core.Backend = (*Backend)(nil)

// New returns a networkd backend.
func New(opts Options) *Backend {
	b := &Backend{dir: opts.Dir, files: opts.NetworkFiles, reloader: opts.Reloader, kernel: opts.Kernel, log: opts.Logger,
		exec: applyrun.NewExecutor(opts.DryRun), leases: map[string]leaseWait{}, now: time.Now}
	if b.dir == "" {
		b.dir = DefaultDir
	}
	if b.files == nil {
		dir := opts.StateDir
		if dir == "" {
			dir = DefaultStateDir
		}
		b.files = StateDir(dir)
	}
	if b.log == nil {
		b.log = hclog.NewNullLogger()
	}
	return b
}

// Name implements core.Backend.
func (b *Backend) Name() string { return "networkd" }

// Actions returns what the last Apply did, or in a dry run would have done, in order.
func (b *Backend) Actions() []string { return b.exec.Actions() }

// Apply implements core.Backend. It writes each planned ENI's files whose bytes differ, removes
// the agent's files the plan no longer produces, removes the files of interfaces that are gone
// without reloading (networkd forgets their links by itself), and reloads networkd once if a
// present interface's configuration changed. A failure on one interface is reported and the
// others are still applied; nothing of an interface is removed after an error on it. Every
// interface networkd runs the files of is Configured; one whose files could not be written, or
// whose active file networkd could not tell, is Failed.
//
// The source rules and secondary addresses of an ENI with IPv6 are not in its files
// (KernelCarried): after the reload Apply puts them into the kernel itself, and the ENI is
// Deferred when its files changed in this pass (networkd drops foreign addresses as it
// reconfigures the link; the next pass adds them again).
func (b *Backend) Apply(ctx context.Context, plan core.Plan, links []core.Link) (core.Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.exec.Begin()
	b.sweep()

	owned, scanErr := scanOwned(b.dir)
	ps := &pass{owned: owned, canRemove: scanErr == nil, names: applyrun.NewPresent(plan, links).ByIndex, reconfigured: map[string]bool{}}
	ps.reported, ps.lookupErrs = b.reportedFiles(ps.names)
	rep, err := applyrun.Run(ctx, "networkd", plan, links, applyrun.Steps{
		Interface: func(_ context.Context, p core.InterfacePlan, ch *core.Changes) core.InterfaceReport {
			return b.applyOne(ps, p, ch)
		},
		Detached: func(_ context.Context, present applyrun.Present, ch *core.Changes) error {
			if ps.canRemove {
				ch.Removed = append(ch.Removed, b.removeDetached(owned, present.Names)...)
			}
			return nil
		},
		Reload: func(ctx context.Context, ch *core.Changes) error {
			// A dry run remembers nothing: it reports the reload the changes it found would need.
			if !b.reloadDue && len(ps.changed) == 0 {
				return nil
			}
			if err := b.reload(ctx, ps.changed); err != nil {
				return err
			}
			ch.Reloads++
			return nil
		},
	})
	if ctx.Err() == nil {
		err = errors.Join(err, b.applyKernel(ps.kernel, &rep))
		b.checkLeases(ctx, plan, ps.reconfigured, &rep)
	}
	return rep, errors.Join(scanErr, err)
}

// applyKernel puts the rules and addresses of the ENIs with IPv6 into the kernel, after the reload,
// and amends their outcome: Failed when that failed, Deferred when networkd reconfigures the link
// for this pass's files. An interface that did not get as far as Configured keeps its outcome.
func (b *Backend) applyKernel(work []kernelWork, rep *core.Report) error {
	var errs []error
	for _, w := range work {
		err := b.syncKernel(w, &rep.Changes)
		errs = append(errs, err)
		i := slices.IndexFunc(rep.Interfaces, func(ir core.InterfaceReport) bool { return ir.MAC == w.p.MAC })
		if i < 0 || rep.Interfaces[i].Outcome != core.Configured {
			continue
		}
		var ir core.InterfaceReport
		switch {
		case err != nil:
			ir = applyrun.Failed(err)
		case w.reconfigured && !w.release && !b.exec.DryRun():
			ir = applyrun.Deferred(reasonReconfiguring, nil)
		default:
			continue
		}
		ir.Name, ir.MAC = rep.Interfaces[i].Name, rep.Interfaces[i].MAC
		rep.Interfaces[i] = ir
	}
	return errors.Join(errs...)
}

// pass is what one Apply learnt about the directory and networkd before the interfaces.
type pass struct {
	owned      []ownedFile
	canRemove  bool
	names      map[int]string
	reported   map[int]string
	lookupErrs map[int]error
	// changed lists the files written or removed for present interfaces: they need a reload.
	changed []string
	// kernel lists the ENIs whose rules and addresses go into the kernel after the reload.
	kernel []kernelWork
	// reconfigured lists the ENIs (by MAC) whose files changed: the reload reconfigures them.
	reconfigured map[string]bool
}

// applyOne writes one planned interface's files and says what came of it.
func (b *Backend) applyOne(ps *pass, p core.InterfacePlan, ch *core.Changes) core.InterfaceReport {
	if err := validName(p.Name); err != nil {
		return applyrun.Failed(err)
	}
	if err := ps.lookupErrs[p.Index]; err != nil {
		// Without knowing which file networkd uses, writing ours could strip our drop-ins from
		// the file that is active. Leave the interface as it is.
		return applyrun.Failed(fmt.Errorf("networkd: %s: %w", p.Name, err))
	}
	active, activeErr := activeFile(p, ps.reported, ps.names, b.dir)
	if activeErr != nil {
		activeErr = fmt.Errorf("networkd: %s: %w", p.Name, activeErr)
	}
	record := filepath.Join(b.dir, DropInDir(p, active), KernelRecord)
	released, release, recErr := recordToRelease(p, record)
	written, removed, err := b.applyInterface(p, active, ps.owned, ps.canRemove)
	if (KernelCarried(p) || release) && err == nil && activeErr == nil {
		ps.kernel = append(ps.kernel, kernelWork{p: p, record: record, reconfigured: len(written)+len(removed) > 0,
			release: release, owned: released})
	}
	err = errors.Join(err, recErr)
	ch.Written = append(ch.Written, written...)
	ch.Removed = append(ch.Removed, removed...)
	ps.changed = append(append(ps.changed, written...), removed...)
	if len(written)+len(removed) > 0 {
		ps.reconfigured[p.MAC] = true
	}
	if len(written)+len(removed) == 0 && err == nil && activeErr == nil {
		b.log.Debug("configuration up to date", "iface", p.Name)
	}
	return applyrun.Configured(errors.Join(activeErr, err))
}

// sweep removes, once, the temporary files a write killed midway left (issue #14).
func (b *Backend) sweep() {
	if b.swept || b.exec.DryRun() {
		return
	}
	b.swept = true
	dirs := []string{b.dir}
	if sub, err := filepath.Glob(filepath.Join(b.dir, "*.network.d")); err == nil {
		dirs = append(dirs, sub...)
	}
	for _, d := range dirs {
		removed, err := atomicfile.RemoveStale(d)
		if err != nil {
			b.log.Warn("cannot remove temporary files of an interrupted write", "dir", d, "error", err)
		}
		for _, f := range removed {
			b.log.Info("removed temporary file of an interrupted write", "file", f)
		}
	}
}

// reportedFiles asks networkd which .network file each link uses. Lookup errors are kept per
// link: only those of planned interfaces matter.
func (b *Backend) reportedFiles(names map[int]string) (map[int]string, map[int]error) {
	reported := make(map[int]string, len(names))
	errs := make(map[int]error)
	for idx := range names {
		if idx <= 0 {
			continue
		}
		f, err := b.files.NetworkFile(idx)
		if err != nil {
			errs[idx] = err
			continue
		}
		if f != "" {
			reported[idx] = f
		}
	}
	return reported, errs
}

// applyInterface writes one ENI's files, then removes the files of ours for it that the plan no
// longer produces (a drop-in that became empty, the other location after the active file
// changed). Writing comes first so the link is never left without its configuration.
func (b *Backend) applyInterface(p core.InterfacePlan, active ActiveFile, owned []ownedFile, canRemove bool) (written, removed []string, err error) {
	files := Render(p, active)
	want := make(map[string]bool, len(files)+1)
	if KernelCarried(p) {
		want[filepath.Join(b.dir, DropInDir(p, active), KernelRecord)] = true // syncKernel writes it
	}
	var wantInfo []fs.FileInfo
	for _, f := range files {
		name := filepath.Join(b.dir, f.Path)
		want[name] = true
		changed, err := b.write(name, f.Content)
		if changed {
			// Recorded even with an error (the directory fsync after the rename failed): the new
			// bytes are in place, and without a reload networkd would never apply them.
			written = append(written, name)
			b.log.Debug("wrote", "iface", p.Name, "file", name, "dry_run", b.exec.DryRun())
		}
		if err != nil {
			return written, nil, fmt.Errorf("networkd: %s: write %s: %w", p.Name, name, err)
		}
		if fi, err := os.Stat(name); err == nil {
			wantInfo = append(wantInfo, fi)
		}
	}
	if !canRemove {
		return written, nil, nil
	}
	var touched []string
	for _, o := range owned {
		if o.iface != p.Name || want[o.path] || sameAsAny(o.path, wantInfo) {
			continue
		}
		if err := b.remove(o.path, true); err != nil {
			return written, removed, fmt.Errorf("networkd: %s: remove %s: %w", p.Name, o.path, err)
		}
		removed = append(removed, o.path)
		touched = append(touched, filepath.Dir(o.path))
		b.log.Debug("removed", "iface", p.Name, "file", o.path, "dry_run", b.exec.DryRun())
	}
	b.removeEmptyDirs(touched)
	return written, removed, nil
}

// removeDetached removes the agent's files for interfaces that are no longer links. networkd is
// not reloaded: it drops a vanished link's configuration by itself, a reload would re-apply every
// other link for nothing (#107), and the Name= in our [Match] keeps the files it still holds in
// memory from capturing the ENI if it comes back under another name (#166).
func (b *Backend) removeDetached(owned []ownedFile, present map[string]bool) []string {
	var removed, touched []string
	for _, o := range owned {
		if present[o.iface] {
			continue
		}
		if err := b.remove(o.path, false); err != nil {
			b.log.Warn("cannot remove configuration of detached interface", "iface", o.iface, "file", o.path, "error", err)
			continue
		}
		removed = append(removed, o.path)
		touched = append(touched, filepath.Dir(o.path))
		b.log.Debug("removed configuration of detached interface", "iface", o.iface, "file", o.path, "dry_run", b.exec.DryRun())
	}
	b.removeEmptyDirs(touched)
	return removed
}

// removeEmptyDirs removes drop-in directories left empty by our removals. A directory that
// still holds someone else's file stays (os.Remove refuses a non-empty directory).
func (b *Backend) removeEmptyDirs(dirs []string) {
	done := map[string]bool{filepath.Clean(b.dir): true}
	for _, d := range dirs {
		if !done[d] {
			done[d] = true
			_ = b.exec.Do("remove-if-empty", d, func() error { return os.Remove(d) })
		}
	}
}

func (b *Backend) reload(ctx context.Context, changed []string) error {
	return b.exec.Do("reload", "systemd-networkd", func() error {
		if b.reloader == nil {
			return errors.New("networkd: reload due but no reloader configured")
		}
		if err := b.reloader.Reload(ctx); err != nil {
			what := "earlier changes"
			if len(changed) > 0 {
				what = strings.Join(changed, ", ")
			}
			return fmt.Errorf("networkd: reload after writing %s: %w", what, err)
		}
		b.reloadDue = false
		b.log.Debug("reloaded systemd-networkd", "files", len(changed))
		return nil
	})
}

// write writes content to name if it differs. The reload it makes due outlives a failed reload.
func (b *Backend) write(name string, content []byte) (changed bool, err error) {
	if !atomicfile.Differs(name, content) {
		return false, nil
	}
	changed = true // what a dry run reports
	err = b.exec.Do("write", name, func() error {
		var err error
		changed, err = atomicfile.Write(name, content)
		b.reloadDue = b.reloadDue || changed
		return err
	})
	return changed, err
}

// remove removes one of our files; due says whether networkd must be reloaded for it (not for a
// detached interface's).
func (b *Backend) remove(path string, due bool) error {
	return b.exec.Do("remove", path, func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		b.reloadDue = b.reloadDue || due
		return nil
	})
}

// validName rejects names that cannot be a link and would escape the directory.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/ \t\n") {
		return fmt.Errorf("networkd: invalid interface name %q", name)
	}
	return nil
}

func sameAsAny(name string, infos []fs.FileInfo) bool {
	fi, err := os.Stat(name)
	if err != nil {
		return false
	}
	for _, w := range infos {
		if os.SameFile(fi, w) {
			return true
		}
	}
	return false
}

// ownedFile is a file in the backend's directory that the agent (or amazon-ec2-net-utils 2.x)
// wrote for an interface.
type ownedFile struct {
	path  string
	iface string
}

// scanOwned lists the agent's files in dir: .network files and drop-ins that carry the marker,
// and the files 2.x left (a NN-<iface>.network symlink to 80-ec2.network and the 2.x drop-ins
// next to it). Anything else — netplan's files, EKS's 70-eks-*, a user's drop-in, a symlinked
// drop-in directory — is not ours and is never removed.
func scanOwned(dir string) ([]ownedFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("networkd: list %s: %w", dir, err)
	}
	var owned []ownedFile
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".network") && e.Type()&fs.ModeSymlink != 0:
			if iface, ok := legacyNetworkFile(name); ok {
				owned = append(owned, ownedFile{name, iface})
			}
		case strings.HasSuffix(e.Name(), ".network") && e.Type().IsRegular():
			iface, err := markedFor(name)
			if err != nil {
				return nil, err
			}
			if iface != "" {
				owned = append(owned, ownedFile{name, iface})
			}
		case strings.HasSuffix(e.Name(), ".network.d") && e.IsDir():
			legacyIface, legacy := legacyNetworkFile(strings.TrimSuffix(name, ".d"))
			for _, n := range dropInNames {
				f := filepath.Join(name, n)
				fi, err := os.Lstat(f)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return nil, fmt.Errorf("networkd: %w", err)
				}
				if !fi.Mode().IsRegular() {
					continue
				}
				iface, err := markedFor(f)
				if err != nil {
					return nil, err
				}
				if iface == "" && legacy {
					iface = legacyIface
				}
				if iface != "" {
					owned = append(owned, ownedFile{f, iface})
				}
			}
		}
	}
	return owned, nil
}

// markedFor returns the interface named by the marker on the file's first line, or "".
func markedFor(name string) (string, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("networkd: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 512)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("networkd: read %s: %w", name, err)
	}
	rest, ok := strings.CutPrefix(line, "# "+marker)
	if !ok {
		return "", nil
	}
	iface, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
	return iface, nil
}
