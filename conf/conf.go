// Package conf loads /etc/ec2-net-utils.conf: typed settings with defaults, strict type checking,
// EC2_NET_UTILS_* environment overrides and validation that reports every bad key at once.
//
// Key names are a public interface (users' files and scripts depend on them), so they are spelled
// out once, in the koanf tags below; the loader, the environment mapping and the tests all derive
// the set of known keys from these tags.
package conf

import (
	"net"
	"slices"
	"strings"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/backends/ifcfg"
	"github.com/ec2-net-utils/ec2-net-utils/backends/networkd"
	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/hostmode"
	"github.com/ec2-net-utils/ec2-net-utils/core/imds"
)

// DefaultPath is where the agent reads its configuration when no other file is named.
const DefaultPath = "/etc/ec2-net-utils.conf"

// Values of the backend key. The backends' Name methods return the same strings.
const (
	BackendAuto           = "auto"
	BackendNetworkd       = "networkd"
	BackendNetworkManager = "networkmanager"
	BackendIfcfg          = "ifcfg"
)

// Config is the whole configuration file, every value typed and, after Load, validated.
type Config struct {
	// Backend selects the network manager the agent drives; auto detects the one that owns the
	// primary interface.
	Backend string `koanf:"backend"`
	// LogLevel is an hclog level name.
	LogLevel string `koanf:"log_level"`
	// RefreshInterval is the period of the IMDS poll that notices secondary addresses and
	// prefixes (IMDS has no change notification).
	RefreshInterval time.Duration `koanf:"refresh_interval"`

	IMDS           IMDS           `koanf:"imds"`
	Interfaces     Interfaces     `koanf:"interfaces"`
	Networkd       Networkd       `koanf:"networkd"`
	NetworkManager NetworkManager `koanf:"networkmanager"`
	Ifcfg          Ifcfg          `koanf:"ifcfg"`
	Daemon         Daemon         `koanf:"daemon"`
	Hostname       Hostname       `koanf:"hostname"`
}

// IMDS configures the instance metadata client.
type IMDS struct {
	// Endpoint overrides the metadata service URL. Empty: AWS_EC2_METADATA_SERVICE_ENDPOINT when
	// that is set, else http://169.254.169.254, then http://[fd00:ec2::254] (see imds.Options).
	Endpoint string `koanf:"endpoint"`
	// Timeout bounds each HTTP request, so a hung IMDS cannot stall the daemon.
	Timeout time.Duration `koanf:"timeout"`
	// MaxAttempts counts tries per request, the first included.
	MaxAttempts int `koanf:"max_attempts"`
	// MaxBackoff caps the jittered exponential backoff between attempts.
	MaxBackoff time.Duration `koanf:"max_backoff"`
	// PropagationTimeout is how long a freshly attached ENI may lack required keys in IMDS before
	// the agent stops waiting for it (it is retried on the next refresh).
	PropagationTimeout time.Duration `koanf:"propagation_timeout"`
}

// Interfaces selects the links the agent manages and how it plans them.
type Interfaces struct {
	Drivers []string `koanf:"drivers"`
	// Exclude holds interface names or MAC addresses (colon form) the agent leaves alone.
	Exclude               []string `koanf:"exclude"`
	PrimaryRules          bool     `koanf:"primary_rules"`
	MainDefaultRoute      bool     `koanf:"main_default_route"`
	AssignPrefixAddresses bool     `koanf:"assign_prefix_addresses"`
	// SecondaryAddresses false leaves the secondary addresses to another agent (ECS awsvpc,
	// Docker macvlan/ipvlan); their source rules stay.
	SecondaryAddresses bool `koanf:"secondary_addresses"`
	// ContainerHost says whether the Amazon VPC CNI owns part of the host's networking: auto
	// detects it, vpc-cni asserts it, off ignores it (hostmode package).
	ContainerHost string `koanf:"container_host"`
	// MTU is 0 to keep the MTU DHCP hands out, else 576..9216.
	MTU int `koanf:"mtu"`
}

// Networkd configures the systemd-networkd backend.
type Networkd struct {
	// Dir receives the generated .network files and drop-ins. /run, not /etc: the files describe
	// the current attachment and are regenerated from IMDS at every boot.
	Dir string `koanf:"dir"`
}

// NetworkManager configures the NetworkManager backend.
type NetworkManager struct {
	// Persist saves profiles to disk. Off, profiles live in memory only and are regenerated from
	// IMDS at boot, so a detached ENI leaves no stale profile behind.
	Persist bool `koanf:"persist"`
}

// Ifcfg configures the initscripts (ifcfg) backend.
type Ifcfg struct {
	Dir             string `koanf:"dir"`
	DHClientConfDir string `koanf:"dhclient_conf_dir"`
	// DHClientScript is the script dhclient runs for the ENIs (-sf): the project's own, which
	// never touches resolv.conf or the main table's default route.
	DHClientScript string `koanf:"dhclient_script"`
	// BroadcastRenewals writes amazon-ec2-net-utils 1.x's
	// `supersede dhcp-server-identifier 255.255.255.255;` into dhclient-<iface>.conf, so renewals
	// leave through the ENI they are for even when two ENIs share a subnet. EC2's DHCP server
	// accepts it; servers that insist on their own identifier (dnsmasq) do not.
	BroadcastRenewals bool `koanf:"broadcast_renewals"`
}

// Daemon tunes the long-running agent.
type Daemon struct {
	// RuleRestoreInterval paces the restores of rules, ENI-table routes and secondary addresses
	// someone else deleted once a short burst is used up, so the agent never fights another
	// manager in a tight loop. (The name predates routes and addresses; kept for compatibility.)
	RuleRestoreInterval time.Duration `koanf:"rule_restore_interval"`
	// FullRefreshEvery makes every Nth refresh re-read the keys that rarely change (subnet and VPC
	// CIDRs, device numbers); the others read only addresses and prefixes.
	FullRefreshEvery int `koanf:"full_refresh_every"`
}

// Hostname configures ec2-net-utils-hostname.service (ec2-net-utils hostname).
type Hostname struct {
	// FromIMDS sets the host name from IMDS local-hostname when the host has none of its own,
	// as amazon-ec2-net-utils 2.7's set-hostname-imds did. Off by default, as that unit was.
	FromIMDS bool `koanf:"from_imds"`
}

// Defaults returns the configuration used for every key the file and environment leave unset.
// packaging/ec2-net-utils.conf documents the same values; a test keeps the two equal.
func Defaults() Config {
	plan := core.DefaultPlanOptions()
	return Config{
		Backend:         BackendAuto,
		LogLevel:        "info",
		RefreshInterval: 10 * time.Second,
		IMDS: IMDS{
			Endpoint:           "",
			Timeout:            imds.DefaultTimeout,
			MaxAttempts:        imds.DefaultMaxAttempts,
			MaxBackoff:         imds.DefaultMaxBackoff,
			PropagationTimeout: imds.DefaultPropagationTimeout,
		},
		Interfaces: Interfaces{
			Drivers:               plan.Drivers,
			Exclude:               []string{},
			PrimaryRules:          plan.PrimaryRules,
			MainDefaultRoute:      plan.MainDefaultRoute,
			AssignPrefixAddresses: plan.AssignPrefixAddresses,
			SecondaryAddresses:    true,
			ContainerHost:         hostmode.ContainerHostAuto,
			MTU:                   plan.MTU,
		},
		Networkd:       Networkd{Dir: networkd.DefaultDir},
		NetworkManager: NetworkManager{Persist: false},
		Ifcfg: Ifcfg{
			Dir:               ifcfg.DefaultDir,
			DHClientConfDir:   ifcfg.DefaultDHClientConfDir,
			DHClientScript:    ifcfg.DefaultScript,
			BroadcastRenewals: true,
		},
		Daemon: Daemon{
			RuleRestoreInterval: 5 * time.Second,
			FullRefreshEvery:    30,
		},
		Hostname: Hostname{FromIMDS: false},
	}
}

// PlanOptions returns the settings that shape the plan. MACs in Exclude are canonicalised to the
// lower-case colon form IMDS uses, so "0A:1B:..." in the file matches; slices are copied so the
// plan cannot alias the configuration.
func (c Config) PlanOptions() core.PlanOptions {
	exclude := make([]string, 0, len(c.Interfaces.Exclude))
	for _, e := range c.Interfaces.Exclude {
		if strings.Contains(e, ":") {
			if mac, err := net.ParseMAC(e); err == nil {
				e = mac.String()
			}
		}
		exclude = append(exclude, e)
	}
	return core.PlanOptions{
		Drivers:               slices.Clone(c.Interfaces.Drivers),
		Exclude:               exclude,
		PrimaryRules:          c.Interfaces.PrimaryRules,
		MainDefaultRoute:      c.Interfaces.MainDefaultRoute,
		AssignPrefixAddresses: c.Interfaces.AssignPrefixAddresses,
		NoSecondaryAddresses:  !c.Interfaces.SecondaryAddresses,
		MTU:                   c.Interfaces.MTU,
	}
}
