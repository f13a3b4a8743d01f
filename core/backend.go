package core

import "context"

// Backend makes one network manager's configuration match a Plan.
//
// Apply is idempotent: called twice with the same plan and links, the second call writes nothing
// and reloads nothing. It only ever touches configuration the agent owns (file-name prefix, profile
// tag, rule priority band) and removes an interface's configuration only when its link is gone
// (detach), never because IMDS was unreachable: the caller does not call Apply without a snapshot.
type Backend interface {
	// Name is the value of the config file's `backend` key that selects this backend.
	Name() string
	Apply(ctx context.Context, plan Plan, links []Link) (Changes, error)
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

// PlanAdjuster is implemented by a backend whose manager keeps per-interface settings of its own
// that override the plan: the ifcfg backend honours amazon-ec2-net-utils 1.x's EC2SYNC,
// MAINROUTETABLE and EC2PROVISIONPFXIPS in ifcfg-<iface>. The reconciler adjusts every plan before
// Apply and uses the adjusted plan for the rest of its work (restoring deleted rules, removing
// the rules of detached ENIs), so an interface left alone by such a setting is left alone by
// every part of the agent. AdjustPlan must be idempotent.
type PlanAdjuster interface {
	AdjustPlan(plan Plan) Plan
}
