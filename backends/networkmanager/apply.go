package networkmanager

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v3"
	"github.com/godbus/dbus/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/netlinkx"
	"github.com/ec2-net-utils/ec2-net-utils/internal/applyrun"
	"github.com/ec2-net-utils/ec2-net-utils/internal/logonce"
)

// Options configure a Backend. Zero fields take the defaults.
type Options struct {
	// Bus is the system bus connection to NetworkManager; the caller owns and closes it.
	Bus *dbus.Conn
	// Persist saves the agent's profiles to /etc/NetworkManager/system-connections. Off (the
	// default) they live in memory (/run), so every boot regenerates them from IMDS and a
	// detached ENI leaves nothing behind.
	Persist bool
	Logger  hclog.Logger
	// DryRun computes what Apply would change (for `apply --dry-run` and `plan`) and changes
	// nothing; it still reads NM's state. Changes.Reloads counts the Reapply or activation calls
	// it would make.
	DryRun bool
	// DeviceWait bounds how long Apply waits for NM to pick up a link the kernel already has
	// (right after a hot attach). Default DefaultDeviceWait.
	DeviceWait time.Duration
	// Kernel adds the ENI tables' IPv6 default routes (see ensureRARoutes), and the source rules
	// and secondary addresses of ENIs with IPv6 (see KernelCarried): the parts of a plan NM is
	// not given. Needed only for plans with IPv6.
	Kernel Kernel
}

// Kernel is the part of netlink the backend uses; *netlinkx.Handle implements it.
type Kernel interface {
	applyrun.RuleKernel
	RoutesInTable(table int) ([]core.Route, error)
	EnsureRoutes(link core.Link, routes []core.Route) ([]core.Route, error)
	SyncAddresses(link core.Link, want, owned []netip.Prefix) (added, removed []netip.Prefix, err error)
}

var _ Kernel = (*netlinkx.Handle)(nil)

// DefaultDeviceWait is long enough for NM to notice and manage a new link (under 0.1 s in the
// lab) and short enough not to hold up the other ENIs when NM never will.
const DefaultDeviceWait = 3 * time.Second

// devicePoll is the interval of that wait.
const devicePoll = 20 * time.Millisecond

// reapplyTries bounds the GetAppliedConnection/Reapply retries when the applied connection
// changes between the two calls (NM itself or another client reapplied), as nm-cloud-setup does.
const reapplyTries = 3

// reapplyPreserveExternalIP is NM_DEVICE_REAPPLY_FLAGS_PRESERVE_EXTERNAL_IP (NM 1.42): without it
// Reapply deletes every address and route on the device that NM did not add — the kernel's IPv6
// link-local address, a user's `ip addr add` — which is not the agent's to remove.
const reapplyPreserveExternalIP = uint32(0x1)

// Backend configures ENIs through NetworkManager. It is safe for concurrent use; Apply calls are
// serialised.
type Backend struct {
	api        nmAPI
	bus        *dbus.Conn // for WatchRestarts; nil in tests with a model of NM
	kernel     Kernel
	persist    bool
	exec       *applyrun.Executor
	log        hclog.Logger
	deviceWait time.Duration

	mu sync.Mutex
	// reapplyFlags is decided from NM's version at the first Apply; nil until then.
	reapplyFlags *uint32
	// noted remembers, per interface, the condition last logged for it (unmanaged, skipped,
	// waiting for a user's profile), so that each is logged once and not on every refresh.
	noted logonce.Notes
}

var _ core.Backend = (*Backend)(nil)

// New returns a NetworkManager backend talking to NM over opts.Bus.
func New(opts Options) *Backend { return newBackend(dbusNM{conn: opts.Bus}, opts) }

func newBackend(api nmAPI, opts Options) *Backend {
	b := &Backend{api: api, bus: opts.Bus, kernel: opts.Kernel, persist: opts.Persist, exec: applyrun.NewExecutor(opts.DryRun), log: opts.Logger,
		deviceWait: opts.DeviceWait}
	if b.log == nil {
		b.log = hclog.NewNullLogger()
	}
	if b.deviceWait <= 0 {
		b.deviceWait = DefaultDeviceWait
	}
	return b
}

// Name implements core.Backend.
func (b *Backend) Name() string { return "networkmanager" }

// Actions returns what the last Apply did, or in a dry run would have done, in order.
func (b *Backend) Actions() []string { return b.exec.Actions() }

// Apply implements core.Backend. For each planned ENI it makes NetworkManager run the plan:
//
//   - ENI running the agent's profile: the profile is updated if it differs (Update2), and the
//     device takes the change with Reapply and the applied connection's version id — never a
//     reactivation, so the DHCP lease and open connections stay.
//   - ENI running a profile of the user's: the plan's routing is added to that profile's applied
//     connection (see Merge) with Reapply; the profile itself is not touched. A profile tagged
//     org.ec2-net-utils.skip=yes is left alone.
//   - ENI running the packaged base profile (DHCP only): the agent's profile is created, and its
//     IP settings are reapplied onto the base's activation (see runOnBase); where NM cannot take
//     them that way (an ENI with IPv6 or an MTU of its own, an activation not yet in its IP
//     configuration) the agent's profile is activated in its place, once.
//   - ENI running nothing: the agent's profile is created and, unless the device's autoconnect
//     is off (`nmcli device disconnect`), activated; if a user's profile is waiting for the ENI,
//     nothing is done until NM or the user activates it.
//
// It deletes the agent's profiles whose ENI is gone (detach), without any reload. A failure on
// one interface is reported and the others are still applied.
//
// The report says LeftAlone for an ENI NM does not manage, one running a profile tagged skip and
// one waiting for a user's profile; Deferred for one whose ENI-table IPv6 default route waits for
// NM to learn the router from an RA, or whose device NM is still activating; Failed for one NM
// still has no device for after DeviceWait (see device).
func (b *Backend) Apply(ctx context.Context, plan core.Plan, links []core.Link) (core.Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.exec.Begin()

	if err := b.init(ctx); err != nil {
		return applyrun.FailAll(plan, err)
	}
	list, err := b.api.Profiles(ctx)
	if err != nil {
		return applyrun.FailAll(plan, fmt.Errorf("networkmanager: list profiles: %w", err))
	}
	st := newNMState(list)
	return applyrun.Run(ctx, "networkmanager", plan, links, applyrun.Steps{
		Interface: func(ctx context.Context, p core.InterfacePlan, ch *core.Changes) core.InterfaceReport {
			ir := b.applyInterface(ctx, p, st, ch)
			if ir.Err != nil {
				ir.Err = fmt.Errorf("networkmanager: %s: %w", p.Name, ir.Err)
			}
			return ir
		},
		Detached: func(ctx context.Context, present applyrun.Present, ch *core.Changes) error {
			return b.removeDetached(ctx, st, present.MACs, ch)
		},
		SkipUnchanged: true,
	})
}

// init decides, once, what NM can do.
func (b *Backend) init(ctx context.Context) error {
	if b.reapplyFlags != nil {
		return nil
	}
	v, err := b.api.Version(ctx)
	if err != nil {
		return fmt.Errorf("networkmanager: ask NetworkManager its version: %w", err)
	}
	flags := uint32(0)
	if versionAtLeast(v, 1, 42) {
		flags = reapplyPreserveExternalIP
	} else {
		b.log.Warn("NetworkManager older than 1.42: a Reapply also removes addresses and routes it did not add",
			"version", v)
	}
	b.reapplyFlags = &flags
	b.log.Debug("NetworkManager", "version", v, "reapply_flags", flags)
	return nil
}

// runs says which kind of profile a device runs.
type runs int

const (
	runsNone runs = iota
	runsOurs
	runsBase
	runsForeign
)

// Reasons the report gives.
const (
	reasonUnmanaged = "NetworkManager does not manage the ENI (unmanaged-devices in NetworkManager.conf)"
	reasonSkip      = "the ENI runs a profile tagged " + TagSkip + "=yes"
	reasonWaiting   = "a profile of the user's waits to run on the ENI"
	// ReasonRA is what an interface whose ENI-table IPv6 default route NM cannot add yet waits for.
	ReasonRA         = "IPv6 router advertisement"
	reasonActivating = "NetworkManager activating the device"
)

// applyInterface makes NM run one ENI's plan and says what came of it.
func (b *Backend) applyInterface(ctx context.Context, p core.InterfacePlan, st *nmState, ch *core.Changes) core.InterfaceReport {
	dev, err := b.device(ctx, p.Name)
	if err != nil {
		return applyrun.Failed(err)
	}
	if dev.State <= gonm.NmDeviceStateUnmanaged {
		b.note(p.Name, "unmanaged", "NetworkManager does not manage this ENI (see unmanaged-devices in NetworkManager.conf); leaving it alone")
		return applyrun.LeftAlone(reasonUnmanaged)
	}
	ours := st.ours[p.MAC]
	kind, active, err := st.classify(dev, ours)
	if err != nil {
		return applyrun.Failed(err)
	}
	obs, err := b.observe(ctx, p, dev)
	if err != nil {
		return applyrun.Failed(err)
	}

	switch {
	case kind == runsForeign && Skipped(active.Settings):
		b.note(p.Name, "skip", "the ENI runs a profile tagged "+TagSkip+"=yes; leaving it alone", "profile", profileName(active))
		return applyrun.LeftAlone(reasonSkip + " (" + profileName(active) + ")")
	case kind == runsForeign:
		if ours != nil {
			// A user's profile took over the ENI; ours would compete with it at the next activation.
			if err := b.deleteProfile(ctx, ours, ch); err != nil {
				return applyrun.Failed(err)
			}
			delete(st.ours, p.MAC)
		}
		reloads := ch.Reloads
		err := b.mergeApplied(ctx, p, dev, active, ch)
		return b.settle(p, obs, ch.Reloads > reloads, err, ch)
	case kind == runsBase && st.foreignAvailable(dev, ours):
		// A user's profile is waiting for this ENI; until it takes over, route the base's lease.
		reloads := ch.Reloads
		err := b.mergeApplied(ctx, p, dev, active, ch)
		return b.settle(p, obs, ch.Reloads > reloads, err, ch)
	case kind == runsNone && st.foreignAvailable(dev, ours):
		b.note(p.Name, "waiting", "a profile of the user's can run on this ENI; waiting for NetworkManager or the user to activate it")
		return applyrun.LeftAlone(reasonWaiting)
	}
	b.note(p.Name, "", "")
	return b.runOwn(ctx, p, dev, kind, ours, obs, ch)
}

// settle finishes an ENI whose running connection NM took the plan into (err: how that went;
// reapplied: with a Reapply): the ENI table's IPv6 default route is added, and the ENI is
// Configured, or Deferred while that route waits for the RA router.
//
// After a Reapply the route is checked again at the next pass: NM 1.42 deletes the device's IPv6
// addresses a few milliseconds after a Reapply with preserve-external-ip, the link-local one
// included (seen in the lab, for a Reapply that changed only IPv4 addresses), and the kernel
// deletes the route through the link-local router with them.
func (b *Backend) settle(p core.InterfacePlan, obs Observed, reapplied bool, err error, ch *core.Changes) core.InterfaceReport {
	if err != nil {
		return applyrun.Failed(err)
	}
	waits, err := b.ensureRARoutes(p, obs, ch)
	if err != nil {
		return applyrun.Failed(err)
	}
	if waits || reapplied && hasRARoute(p) {
		return applyrun.Deferred(ReasonRA, nil)
	}
	return applyrun.Configured(nil)
}

// activating is the outcome of an ENI whose device was just (re)activated, or left to NM's
// autoconnect: NM takes the profile as it is. The ENI table's IPv6 default route waits for the
// next pass: the activation restarts IPv6 and loses the router, and the device's deactivation
// would flush a route added now.
func activating(p core.InterfacePlan, err error) core.InterfaceReport {
	if hasRARoute(p) || KernelCarried(p) {
		return applyrun.Deferred(ReasonRA, err)
	}
	return applyrun.Configured(err)
}

// runOwn makes the device run the agent's profile: created (and activated in place of the base
// or on an idle device), or updated and reapplied. For an ENI with IPv6 (KernelCarried) the
// rules and addresses go into the kernel here too: the rules always, the addresses once the
// device is activated (an activation flushes the link's IPv6 addresses).
func (b *Backend) runOwn(ctx context.Context, p core.InterfacePlan, dev device, kind runs, ours *profile, obs Observed,
	ch *core.Changes) core.InterfaceReport {
	want := Render(p)
	id := ProfileID(p.Name)
	var kernelErr error
	switch {
	case KernelCarried(p):
		var owned []netip.Prefix
		if ours != nil {
			owned = recordedAddresses(ours.Settings)
		}
		activated := ours != nil && kind == runsOurs && dev.State == gonm.NmDeviceStateActivated
		var record []netip.Prefix
		record, kernelErr = b.syncKernel(p, owned, activated, ch)
		want = withRecord(want, record)
	case ours != nil && userData(ours.Settings)[TagKernel] != "":
		// No IPv6 any more: the profile carries everything again, and what the agent added
		// itself that the plan no longer has (the IPv6 rules and addresses) goes.
		_, kernelErr = b.syncKernel(p, recordedAddresses(ours.Settings), true, ch)
	}
	if kind == runsBase && onBase(p) && dev.State >= gonm.NmDeviceStateIpConfig && dev.State <= gonm.NmDeviceStateActivated {
		return b.runOnBase(ctx, p, dev, ours, want, obs, ch)
	}
	if ours == nil {
		var on dbus.ObjectPath
		if kind == runsBase || (dev.Autoconnect && dev.State >= gonm.NmDeviceStateDisconnected) {
			on = dev.Path
		}
		if err := b.exec.Do("add-profile", id, func() error {
			_, err := b.api.AddProfile(ctx, want, b.persist, on)
			return err
		}); err != nil {
			return applyrun.Failed(fmt.Errorf("add profile %s: %w", id, err))
		}
		ch.Written = append(ch.Written, id)
		if on != "" {
			ch.Reloads++
		}
		b.log.Debug("added profile", "iface", p.Name, "profile", id, "activated", on != "", "dry_run", b.exec.DryRun())
		return activating(p, kernelErr)
	}

	if err := b.ensureProfile(ctx, p, ours, want, ch); err != nil {
		return applyrun.Failed(errors.Join(err, kernelErr))
	}
	switch kind {
	case runsOurs:
		if dev.State == gonm.NmDeviceStateActivated {
			reloads := ch.Reloads
			err := b.reapplyOwn(ctx, p, dev, want, ch)
			return b.settle(p, obs, ch.Reloads > reloads, errors.Join(err, kernelErr), ch)
		}
		// Still activating: the device takes the profile as it is now; the next pass compares again.
		return applyrun.Deferred(reasonActivating, kernelErr)
	case runsBase:
		if err := b.exec.Do("activate", id, func() error { return b.api.Activate(ctx, ours.Path, dev.Path) }); err != nil {
			return applyrun.Failed(fmt.Errorf("activate %s: %w", id, err))
		}
		ch.Reloads++
		b.log.Debug("activated profile in place of the base profile", "iface", p.Name, "profile", id, "dry_run", b.exec.DryRun())
	case runsNone:
		// NM's autoconnect decides: the profile may have been taken down on purpose.
	}
	return activating(p, kernelErr)
}

// onBase reports whether the agent's settings can be reapplied onto the packaged base profile's
// activation instead of activating the agent's profile in its place. NM 1.42 reapplies ipv4 and
// ipv6 but not 802-3-ethernet (the MTU), and an ENI with IPv6 (KernelCarried) keeps the activation
// in place of the base, the path its IPv6 handling was measured on. The activation must have
// reached its IP configuration (runOwn checks the device state): NM 1.42 takes a Reapply from then on, also while
// DHCP is still waiting for a lease, and the lease then comes with the agent's settings (lab test
// TestLabBaseStillWaitingForDHCPTakesThePlanByReapply).
func onBase(p core.InterfacePlan) bool { return !KernelCarried(p) && p.MTU <= 0 }

// runOnBase routes an ENI that runs the packaged base profile by reapplying the agent's IP
// settings onto the activation NM already made, rather than activating the agent's profile in its
// place: that second activation cost a hot attach NM's deactivation and a DHCP round, about 40 ms
// in the lab, with the ENI unrouted meanwhile. The agent's profile is still added (not activated)
// and kept up to date: it has NM's default autoconnect priority, above the base's, so a later
// autoconnect of the ENI (the device disconnected and reconnected) picks it. An NM restart assumes
// the base again, with its own settings: WatchRestarts has the daemon compare the ENI again.
func (b *Backend) runOnBase(ctx context.Context, p core.InterfacePlan, dev device, ours *profile, want Settings, obs Observed,
	ch *core.Changes) core.InterfaceReport {
	reloads := ch.Reloads
	err := b.reapply(ctx, p, dev, ch, func(applied Settings) (Settings, string) {
		return Adopt(applied, want), diff(ipSettings(want), applied)
	})
	// The routing first, the profile after: a hot attach is routed one D-Bus call sooner.
	id := ProfileID(p.Name)
	var path dbus.ObjectPath
	var perr error
	if ours == nil {
		perr = b.exec.Do("add-profile", id, func() error {
			var err error
			path, err = b.api.AddProfile(ctx, want, b.persist, "")
			return err
		})
		if perr != nil {
			perr = fmt.Errorf("add profile %s: %w", id, perr)
		} else {
			ch.Written = append(ch.Written, id)
			b.log.Debug("added profile", "iface", p.Name, "profile", id, "activated", false, "dry_run", b.exec.DryRun())
		}
	} else {
		path = ours.Path
		perr = b.ensureProfile(ctx, p, ours, want, ch)
	}
	if err != nil && perr == nil && path != "" && ctx.Err() == nil {
		// NM refused the settings on the base's activation: the agent's profile in its place,
		// as before, rather than an ENI left on the base's settings at every pass.
		b.log.Warn("NetworkManager refused the agent's settings on the base profile's activation; activating the agent's profile in its place",
			"iface", p.Name, "error", err)
		if err := b.exec.Do("activate", id, func() error { return b.api.Activate(ctx, path, dev.Path) }); err != nil {
			return applyrun.Failed(fmt.Errorf("activate %s: %w", id, err))
		}
		ch.Reloads++
		return activating(p, nil)
	}
	return b.settle(p, obs, ch.Reloads > reloads, errors.Join(err, perr), ch)
}

// device looks the interface up in NM, waiting a bounded time for NM to pick up a link the
// kernel just got (hot attach) and, once per interface, for it to leave the unmanaged state it
// starts in.
func (b *Backend) device(ctx context.Context, iface string) (device, error) {
	deadline := time.Now().Add(b.deviceWait)
	for {
		d, err := b.api.Device(ctx, iface)
		settled := err == nil && (d.State > gonm.NmDeviceStateUnmanaged || b.noted.Last(iface) == "unmanaged")
		if settled || (err != nil && !errors.Is(err, errUnknownDevice)) || time.Now().After(deadline) {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(devicePoll):
		}
	}
}

// observe reads what the plan needs from NM: the IPv6 router, when the plan routes through it.
// NM reports none while it restarts IPv6, and none at all with never-default (ensureRARoutes then
// asks the kernel).
func (b *Backend) observe(ctx context.Context, p core.InterfacePlan, dev device) (Observed, error) {
	var o Observed
	if !hasRARoute(p) {
		return o, nil
	}
	gw, err := b.api.Gateway6(ctx, dev.Ip6Config)
	if err != nil {
		return o, fmt.Errorf("read the IPv6 router: %w", err)
	}
	o.RAGateway6 = gw
	return o, nil
}

// ensureProfile updates the agent's profile when it differs from want, or lives on the wrong
// side of persist (in memory ⇔ unsaved).
func (b *Backend) ensureProfile(ctx context.Context, p core.InterfacePlan, ours *profile, want Settings, ch *core.Changes) error {
	why := diff(want, ours.Settings)
	unsaved, err := b.api.Unsaved(ctx, ours.Path)
	if err != nil {
		return err
	}
	if unsaved == b.persist {
		why = "persist=" + strconv.FormatBool(b.persist)
	}
	if why == "" {
		return nil
	}
	id := ProfileID(p.Name)
	if err := b.exec.Do("update-profile", id, func() error { return b.api.UpdateProfile(ctx, ours.Path, want, b.persist) }); err != nil {
		return fmt.Errorf("update profile %s: %w", id, err)
	}
	ch.Written = append(ch.Written, id)
	b.log.Debug("updated profile", "iface", p.Name, "profile", id, "changed", why, "dry_run", b.exec.DryRun())
	return nil
}

// reapplyOwn makes the device take the agent's profile as it is now, if what it applies differs.
// The user data is not compared: it changes nothing on the link (for an ENI with IPv6 it records
// the addresses the agent added itself), and every Reapply restarts IPv6 on NM 1.42.
func (b *Backend) reapplyOwn(ctx context.Context, p core.InterfacePlan, dev device, want Settings, ch *core.Changes) error {
	compared := maps.Clone(want)
	delete(compared, "user")
	return b.reapply(ctx, p, dev, ch, func(applied Settings) (Settings, string) {
		return nil, diff(compared, applied)
	})
}

// mergeApplied adds the plan's routing to the applied connection of a profile the agent does not own.
func (b *Backend) mergeApplied(ctx context.Context, p core.InterfacePlan, dev device, prof *profile, ch *core.Changes) error {
	return b.reapply(ctx, p, dev, ch, func(applied Settings) (Settings, string) {
		merged, skipped := Merge(applied, prof.Settings, p)
		if len(skipped) > 0 {
			b.note(p.Name, "family", "the ENI's profile does not allow addresses for "+strings.Join(skipped, ", ")+
				"; that part of the plan is not applied", "profile", profileName(prof))
		}
		return merged, routingDiff(merged, applied)
	})
}

// reapply reads the applied connection, asks next what to reapply (nil: the profile) and why
// ("" when nothing differs), and reapplies it with the version id it read, retrying when the
// applied connection changed in between.
func (b *Backend) reapply(ctx context.Context, p core.InterfacePlan, dev device, ch *core.Changes,
	next func(applied Settings) (Settings, string)) error {
	for range reapplyTries {
		applied, version, err := b.api.Applied(ctx, dev.Path)
		if errors.Is(err, errNotActive) {
			return nil // deactivated meanwhile: the next activation applies the profile as it is
		}
		if err != nil {
			return err
		}
		settings, why := next(applied)
		if why == "" {
			return nil
		}
		err = b.exec.Do("reapply", p.Name, func() error {
			return b.api.Reapply(ctx, dev.Path, settings, version, *b.reapplyFlags)
		})
		if errors.Is(err, errVersionMismatch) {
			continue
		}
		if errors.Is(err, errNotActive) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reapply: %w", err)
		}
		if settings != nil {
			ch.Written = append(ch.Written, AppliedName(p.Name))
		}
		ch.Reloads++
		b.log.Debug("reapplied", "iface", p.Name, "changed", why, "own_profile", settings == nil, "dry_run", b.exec.DryRun())
		return nil
	}
	return fmt.Errorf("reapply: the applied connection changed %d times in a row", reapplyTries)
}

// Observed is what NM knows and the plan cannot: read from NM before the ENI table's IPv6 default
// route is added.
type Observed struct {
	// RAGateway6 is the IPv6 router learned from router advertisements (the VPC router's
	// link-local address, which IMDS does not publish), from the device's IP6Config. Zero when NM
	// reports none.
	RAGateway6 netip.Addr
}

// ensureRARoutes puts the plan's routes through the RA router (the ENI table's IPv6 default route)
// in place with netlink, outside NM: NM does not own the ENI table (see Render), so it neither
// removes the route nor restarts anything for it. The router is the one NM reports or, when it
// reports none, the one of the RA default route in main. With neither, a route already in the
// table through a link-local router stays as it is: a router NM lost for a moment (it does while
// it restarts IPv6) is no reason to remove a working route. waits reports a route that is not in
// place and has no router to go through yet.
func (b *Backend) ensureRARoutes(p core.InterfacePlan, obs Observed, ch *core.Changes) (waits bool, err error) {
	var want []core.Route
	for _, r := range p.Routes {
		if !r.GatewayFromRA {
			continue
		}
		if obs.RAGateway6.IsValid() {
			r.Gateway, r.GatewayFromRA = obs.RAGateway6, false
		}
		want = append(want, r)
	}
	if len(want) == 0 {
		return false, nil
	}
	if b.kernel == nil {
		return false, errors.New("no netlink handle to add the ENI table's IPv6 default route")
	}
	missing, err := b.missingRoutes(want)
	if err != nil || len(missing) == 0 {
		return false, err
	}
	link := core.Link{Name: p.Name, Index: p.Index, MAC: p.MAC}
	replaced := missing // what a dry run reports
	err = b.exec.Do("route", p.Name, func() error {
		replaced, err = b.kernel.EnsureRoutes(link, missing)
		return err
	})
	for _, r := range replaced {
		ch.Written = append(ch.Written, fmt.Sprintf("%s: route %s", p.Name, r))
	}
	waits, err = netlinkx.SplitRAWait(err)
	if err != nil {
		return false, fmt.Errorf("the ENI table's IPv6 default route: %w", err)
	}
	if len(replaced) > 0 {
		b.log.Info("ENI table route through the IPv6 router in place", "iface", p.Name, "table", p.Table,
			"routes", fmt.Sprint(replaced), "dry_run", b.exec.DryRun())
	}
	return waits, nil
}

// missingRoutes are the routes of want not in their table yet: a resolved route whose destination
// the table routes through another gateway, and an unresolved one whose destination it does not
// route through a link-local router.
func (b *Backend) missingRoutes(want []core.Route) ([]core.Route, error) {
	var missing []core.Route
	tables := map[int][]core.Route{}
	for _, r := range want {
		have, ok := tables[r.Table]
		if !ok {
			var err error
			if have, err = b.kernel.RoutesInTable(r.Table); err != nil {
				return nil, fmt.Errorf("the ENI table's IPv6 default route: %w", err)
			}
			tables[r.Table] = have
		}
		if !slices.ContainsFunc(have, func(h core.Route) bool {
			return h.Destination == r.Destination.Masked() &&
				(h.Gateway == r.Gateway || r.GatewayFromRA && h.Gateway.IsLinkLocalUnicast())
		}) {
			missing = append(missing, r)
		}
	}
	return missing, nil
}

// AppliedName names, in Changes.Written, the applied connection of a profile the agent does not
// own, changed on the device iface.
func AppliedName(iface string) string { return "applied:" + iface }

// removeDetached deletes the agent's profiles whose ENI is gone. NM forgot the device already;
// deleting an inactive profile reloads nothing.
func (b *Backend) removeDetached(ctx context.Context, st *nmState, present map[string]bool, ch *core.Changes) error {
	var errs []error
	for _, mac := range sortedKeys(st.ours) {
		if present[mac] {
			continue
		}
		if err := b.deleteProfile(ctx, st.ours[mac], ch); err != nil {
			errs = append(errs, fmt.Errorf("networkmanager: profile of detached ENI %s: %w", mac, err))
		}
	}
	return errors.Join(errs...)
}

func (b *Backend) deleteProfile(ctx context.Context, prof *profile, ch *core.Changes) error {
	name := profileName(prof)
	if err := b.exec.Do("delete-profile", name, func() error { return b.api.DeleteProfile(ctx, prof.Path) }); err != nil {
		return fmt.Errorf("delete profile %s: %w", name, err)
	}
	ch.Removed = append(ch.Removed, name)
	b.log.Debug("deleted profile", "profile", name, "dry_run", b.exec.DryRun())
	return nil
}

// note logs a condition of an interface once, until another one (or "", none) replaces it.
func (b *Backend) note(iface, key, msg string, args ...any) {
	if b.noted.Changed(iface, key) && key != "" {
		b.log.Warn(msg, append([]any{"iface", iface}, args...)...)
	}
}

// nmState is the profile list of one Apply, indexed.
type nmState struct {
	byPath map[dbus.ObjectPath]*profile
	// ours maps an ENI's MAC to the agent's profile for it.
	ours map[string]*profile
}

func newNMState(list []profile) *nmState {
	st := &nmState{byPath: make(map[dbus.ObjectPath]*profile, len(list)), ours: map[string]*profile{}}
	for i := range list {
		p := &list[i]
		st.byPath[p.Path] = p
		if Owned(p.Settings) {
			mac, _ := profileMAC(p.Settings)
			st.ours[mac] = p
		}
	}
	return st
}

// classify says what the device runs. A device running a profile the list does not hold (added
// since the list was read) is reported as an error: the next pass sees it.
func (st *nmState) classify(dev device, ours *profile) (runs, *profile, error) {
	if dev.Active == "" {
		return runsNone, nil, nil
	}
	active := st.byPath[dev.Active]
	switch {
	case active == nil:
		return runsNone, nil, fmt.Errorf("the device runs profile %s, which NetworkManager did not list", dev.Active)
	case ours != nil && active.Path == ours.Path:
		return runsOurs, active, nil
	case IsBase(active.Settings):
		return runsBase, active, nil
	default:
		return runsForeign, active, nil
	}
}

// foreignAvailable reports whether a profile of the user's could run on the device.
func (st *nmState) foreignAvailable(dev device, ours *profile) bool {
	return slices.ContainsFunc(dev.Available, func(path dbus.ObjectPath) bool {
		p := st.byPath[path]
		return p != nil && (ours == nil || p.Path != ours.Path) && !IsBase(p.Settings) && !Owned(p.Settings)
	})
}

func profileName(p *profile) string {
	if id := stringValue(p.Settings, "connection", "id"); id != "" {
		return id
	}
	return string(p.Path)
}

// versionAtLeast compares NM's "major.minor.micro" version.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || (maj == major && mnr >= minor)
}
