package core

import "context"

// Backend makes one network manager's configuration match a Plan.
//
// Apply is idempotent: called twice with the same plan and links, the second call writes nothing
// and reloads nothing. It only ever touches configuration the agent owns (file-name prefix, profile
// tag, rule priority band) and removes an interface's configuration only when its link is gone
// (detach), never because IMDS was unreachable: the caller does not call Apply without a snapshot.
//
// The Report says what happened to every planned interface. Everything the caller does after
// Apply (restoring rules, adding altnames, cleaning up after a detach, remembering the pass as
// applied) follows the report, never the assumption that a nil error means all was done. The
// error joins every interface's error with those of the steps shared by all interfaces (listing
// the manager's state, the reload, removing a detached interface's configuration).
type Backend interface {
	// Name is the value of the config file's `backend` key that selects this backend.
	Name() string
	Apply(ctx context.Context, plan Plan, links []Link) (Report, error)
}

// Describer is a Backend that can say what carries an interface's configuration in its manager,
// for `status`. It reads and changes nothing but the manager's state it asks about.
type Describer interface {
	// Carriers lists the files or profiles that carry p's configuration now, the one the manager
	// applies first; none when there is nothing yet (the agent's next pass writes it).
	Carriers(ctx context.Context, p InterfacePlan) ([]Carrier, error)
}

// RestartWatcher is a Backend whose manager can come back from a restart running an ENI with less
// than the agent gave it (NetworkManager assumes the packaged base profile's activation again,
// with the base's own settings, where the agent had reapplied its own). The channel receives a
// value each time the manager is back and has taken its devices up again, until ctx ends; the
// daemon then compares every ENI again.
type RestartWatcher interface {
	WatchRestarts(ctx context.Context) (<-chan struct{}, error)
}

// Carrier is one file or profile that carries an interface's configuration.
type Carrier struct {
	// Name is a file's path, or a profile's id and UUID.
	Name string `json:"name"`
	// InUse: the manager applies it to the interface now (the .network file networkd reports,
	// the profile the device runs, the ifcfg file ifup reads).
	InUse bool `json:"in_use"`
	// Ours: the agent wrote it and keeps it up to date (an ifcfg file edited since is not).
	Ours bool `json:"ours"`
}

// Outcome is what Apply did with one planned interface.
type Outcome string

const (
	// Configured: the manager runs the interface's plan.
	Configured Outcome = "configured"
	// LeftAlone: the backend deliberately did not touch the interface (the manager does not
	// manage it, a user's setting or profile says so); Reason says why. No part of the agent
	// touches it either: no source rules, no altnames, no cleanup when it goes.
	LeftAlone Outcome = "left-alone"
	// Deferred: the interface is configured as far as it can be, and the rest waits for state
	// outside the plan (the IPv6 router an RA announces, a device the manager has not picked up
	// yet); Reason says what. The next pass must try again, not skip it as done.
	Deferred Outcome = "deferred"
	// Failed: applying the interface's plan failed; Err says how. What was there stays.
	Failed Outcome = "failed"
)

// InterfaceReport is the outcome for one planned interface.
type InterfaceReport struct {
	Name    string  `json:"name"`
	MAC     string  `json:"mac"`
	Outcome Outcome `json:"outcome"`
	// Reason says why an interface was left alone or what a deferred one waits for.
	Reason string `json:"reason,omitempty"`
	// Err is the failure of a Failed interface (also part of Apply's error).
	Err error `json:"-"`
}

// Report is what one Apply did: the changes it made and the outcome per planned interface, in
// plan order.
type Report struct {
	Changes
	Interfaces []InterfaceReport `json:"interfaces"`
}

// Outcome returns the outcome for the planned interface with this MAC, and false when the report
// has none (the interface was not planned, or Apply stopped before it).
func (r Report) Outcome(mac string) (InterfaceReport, bool) {
	for _, ir := range r.Interfaces {
		if ir.MAC == mac {
			return ir, true
		}
	}
	return InterfaceReport{}, false
}

// Settled reports whether every interface of plan was either configured or left alone: nothing
// failed, nothing waits, nothing was skipped. Only a settled pass may be remembered as applied.
func (r Report) Settled(plan Plan) bool {
	for _, p := range plan.Interfaces {
		ir, ok := r.Outcome(p.MAC)
		if !ok || (ir.Outcome != Configured && ir.Outcome != LeftAlone) {
			return false
		}
	}
	return true
}

// Changes reports what one Apply did, for logs, tests and benchmarks.
type Changes struct {
	// Written and Removed name the files or profiles that changed.
	Written []string `json:"written,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Reloads counts manager reloads (networkd Reload, NM Reapply/Activate, dhclient restarts).
	Reloads int `json:"reloads"`
}

// Changed reports whether Apply changed anything.
func (c Changes) Changed() bool { return len(c.Written) > 0 || len(c.Removed) > 0 || c.Reloads > 0 }

// PlanOptions are the settings of the config file that shape the plan.
type PlanOptions struct {
	// Drivers whose links can be ENIs (ena, ixgbevf, vif). A link is an ENI only if its driver is
	// listed AND its MAC is in IMDS, so VLANs, bridges and container veths never are.
	Drivers []string
	// Exclude lists interface names or MACs the agent must leave alone.
	Exclude []string
	// PrimaryRules adds source rules for the primary ENI too. Off by default: with them, replies
	// from Docker bridges to host ports leave by the wrong path (amazon-ec2-net-utils #97).
	PrimaryRules bool
	// MainDefaultRoute puts each secondary ENI's DHCP default route into the main table (with its
	// own metric), as amazon-ec2-net-utils 2.x does. Off keeps secondaries out of main (1.x MAINROUTETABLE=no).
	MainDefaultRoute bool
	// AssignPrefixAddresses assigns every address of delegated IPv4 prefixes (1.x EC2PROVISIONPFXIPS).
	AssignPrefixAddresses bool
	// MTU to set on ENIs; 0 leaves it to DHCP (option 26).
	MTU int
	// NoSecondaryAddresses assigns no secondary address to any ENI (interfaces.secondary_addresses
	// = false): another agent owns them (ECS awsvpc, Docker macvlan/ipvlan). Their source rules
	// stay, because the addresses are still the ENI's and traffic from them must leave by it.
	NoSecondaryAddresses bool

	// The two fields below are what the host-mode detection found (hostmode package); they come
	// in as data so the planner stays pure.

	// StandBack, when not empty, is why the agent manages no ENI at all (amazon-ec2-net-utils
	// 2.x's automation disabled on this image): every ENI is listed in Ignored with this reason.
	StandBack string
	// VPCCNI, when not empty, is why the host is taken for one where the Amazon VPC CNI runs. The
	// CNI hands every secondary IPv4 address and every delegated prefix of every ENI to pods and
	// configures the ENIs it attaches itself, so the agent plans the primary ENI only, without
	// secondary addresses and with rules only for the ENI's own addresses; the other ENIs are
	// listed in Ignored with this reason.
	VPCCNI string
}

// DefaultPlanOptions are the planner settings of an empty config file.
func DefaultPlanOptions() PlanOptions {
	return PlanOptions{Drivers: []string{"ena", "ixgbevf", "vif"}, MainDefaultRoute: true}
}
