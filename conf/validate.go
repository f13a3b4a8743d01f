package conf

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/core/hostmode"
)

// Ranges of the numeric keys. The bounds keep the agent usable: a refresh faster than 1s
// hammers IMDS, one slower than 1h leaves a new secondary address unrouted for too long.
var (
	refreshRange          = durationRange{time.Second, time.Hour}
	imdsTimeoutRange      = durationRange{100 * time.Millisecond, time.Minute}
	maxBackoffRange       = durationRange{10 * time.Millisecond, time.Minute}
	propagationRange      = durationRange{time.Second, 10 * time.Minute}
	ruleRestoreRange      = durationRange{time.Second, time.Hour}
	maxAttemptsRange      = intRange{1, 20}
	fullRefreshEveryRange = intRange{1, 10000}
	mtuRange              = intRange{576, 9216} // IPv4 minimum .. largest jumbo frame ENA/ixgbevf accept
)

var (
	backends       = []string{BackendAuto, BackendNetworkd, BackendNetworkManager, BackendIfcfg}
	containerHosts = []string{hostmode.ContainerHostAuto, hostmode.ContainerHostVPCCNI, hostmode.ContainerHostOff}
	logLevels      = []string{"trace", "debug", "info", "warn", "error"}
)

// Validate checks the values (types are checked while loading) and returns every problem,
// joined, each an *Error naming its dotted key. Source is left empty: Load fills it in.
func (c Config) Validate() error {
	var v validator
	v.oneOf("backend", c.Backend, backends)
	v.oneOf("log_level", c.LogLevel, logLevels)
	v.durationIn("refresh_interval", c.RefreshInterval, refreshRange)

	v.endpoint("imds.endpoint", c.IMDS.Endpoint)
	v.durationIn("imds.timeout", c.IMDS.Timeout, imdsTimeoutRange)
	v.intIn("imds.max_attempts", c.IMDS.MaxAttempts, maxAttemptsRange)
	v.durationIn("imds.max_backoff", c.IMDS.MaxBackoff, maxBackoffRange)
	v.durationIn("imds.propagation_timeout", c.IMDS.PropagationTimeout, propagationRange)

	v.drivers("interfaces.drivers", c.Interfaces.Drivers)
	v.exclude("interfaces.exclude", c.Interfaces.Exclude)
	v.oneOf("interfaces.container_host", c.Interfaces.ContainerHost, containerHosts)
	if c.Interfaces.AssignPrefixAddresses && !c.Interfaces.SecondaryAddresses {
		v.fail("interfaces.assign_prefix_addresses", "is true, but interfaces.secondary_addresses = false assigns no address at all; set one of them")
	}
	if mtu := c.Interfaces.MTU; mtu != 0 && (mtu < mtuRange.min || mtu > mtuRange.max) {
		v.fail("interfaces.mtu", "%d is out of range; want 0 (keep the MTU from DHCP) or %d to %d",
			mtu, mtuRange.min, mtuRange.max)
	}

	v.absDir("networkd.dir", c.Networkd.Dir)
	v.absDir("ifcfg.dir", c.Ifcfg.Dir)
	v.absDir("ifcfg.dhclient_conf_dir", c.Ifcfg.DHClientConfDir)
	v.absPath("ifcfg.dhclient_script", c.Ifcfg.DHClientScript)

	v.durationIn("daemon.rule_restore_interval", c.Daemon.RuleRestoreInterval, ruleRestoreRange)
	v.intIn("daemon.full_refresh_every", c.Daemon.FullRefreshEvery, fullRefreshEveryRange)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) fail(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{Key: key, Problem: fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(key, val string, valid []string) {
	if !slices.Contains(valid, val) {
		v.fail(key, "%s is not one of %s", core.QuoteValue(val), strings.Join(valid, ", "))
	}
}

type durationRange struct{ min, max time.Duration }

func (v *validator) durationIn(key string, d time.Duration, r durationRange) {
	if d < r.min || d > r.max {
		v.fail(key, "%s is out of range; want %s to %s", short(d), short(r.min), short(r.max))
	}
}

type intRange struct{ min, max int }

func (v *validator) intIn(key string, n int, r intRange) {
	if n < r.min || n > r.max {
		v.fail(key, "%d is out of range; want %d to %d", n, r.min, r.max)
	}
}

// endpoint accepts what the IMDS client can use as a base URL: http or https, a host, and no
// path, query or credentials (the client appends /latest/... itself).
func (v *validator) endpoint(key, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		v.fail(key, "%s is not a URL: %v", core.QuoteValue(s), err)
	case u.Scheme != "http" && u.Scheme != "https":
		v.fail(key, `%s is not a usable endpoint: want an http:// or https:// URL such as "http://169.254.169.254"`, core.QuoteValue(s))
	case u.Host == "" || u.Hostname() == "":
		v.fail(key, "%s is not a usable endpoint: it has no host", core.QuoteValue(s))
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		v.fail(key, "%s is not a usable endpoint: want only scheme, host and port, no path, query or credentials", core.QuoteValue(s))
	}
}

func (v *validator) drivers(key string, drivers []string) {
	if len(drivers) == 0 {
		v.fail(key, "is empty, so no interface would be managed; list at least one driver such as \"ena\"")
	}
	for i, d := range drivers {
		if d == "" || strings.ContainsFunc(d, isSpaceOrSlash) {
			v.fail(key, "element %d: %s is not a driver name", i+1, core.QuoteValue(d))
		}
	}
}

// exclude accepts interface names, shell patterns of names (path.Match: "eth*", "ens[5-7]") and
// MACs. The kernel forbids ':' in interface names, so an entry with a colon must be a MAC: a typo
// there is reported instead of silently matching nothing. MACs are matched exactly, never as
// patterns.
func (v *validator) exclude(key string, entries []string) {
	for i, e := range entries {
		if strings.Contains(e, ":") {
			if mac, err := net.ParseMAC(e); err != nil || len(mac) != 6 {
				v.fail(key, "element %d: %s is not a MAC address; want six hex bytes such as \"0a:1b:2c:3d:4e:5f\"", i+1, core.QuoteValue(e))
			}
			continue
		}
		if strings.ContainsAny(e, `*?[\`) {
			if _, err := path.Match(e, ""); err != nil {
				v.fail(key, "element %d: %s is not a valid pattern: %v", i+1, core.QuoteValue(e), err)
			} else if strings.ContainsFunc(e, isSpaceOrSlash) {
				v.fail(key, "element %d: %s matches no interface name: names contain no spaces or slashes", i+1, core.QuoteValue(e))
			}
			continue
		}
		if problem := ifnameProblem(e); problem != "" {
			v.fail(key, "element %d: %s is neither a MAC address (colon form) nor an interface name: %s", i+1, core.QuoteValue(e), problem)
		}
	}
}

// ifnameProblem mirrors the kernel's dev_valid_name.
func ifnameProblem(name string) string {
	switch {
	case name == "":
		return "it is empty"
	case len(name) > 15:
		return "names are at most 15 characters"
	case name == "." || name == "..":
		return "it is reserved"
	case strings.ContainsFunc(name, isSpaceOrSlash):
		return "names contain no spaces or slashes"
	}
	return ""
}

func isSpaceOrSlash(r rune) bool {
	return r == '/' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

func (v *validator) absDir(key, dir string) {
	if !strings.HasPrefix(dir, "/") {
		v.fail(key, "%s is not an absolute path", core.QuoteValue(dir))
	}
}

// absPath checks a file path. Whether the file exists is the backend's concern: the key is valid
// on hosts that use another backend and lack the file.
func (v *validator) absPath(key, path string) {
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
		v.fail(key, "%s is not an absolute file path", core.QuoteValue(path))
	}
}

// short formats a duration the way a user writes it: 1h, not 1h0m0s.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
