package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// session is a lab with the backend's manager and the agent running in it.
type session struct {
	o     options
	l     *lab.Lab
	agent *lab.Process
}

// The lab's ENIs: ens5 is the primary ENI, ens6 a dual-stack secondary ENI attached at boot (its
// first ipv6s entry comes by DHCPv6, the second is the agent's to assign), ens7 an ENI waiting in
// the pool to be hot-attached.
var (
	ens5 = lab.ENISpec{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", DeviceNumber: 0,
		PrivateIPs: []string{"10.99.0.10", "10.99.0.20"}, Attached: true}
	ens6 = lab.ENISpec{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1,
		PrivateIPs: []string{"10.99.1.10", "10.99.1.20"}, IPv6s: []string{"fd00:99:0:1::10", "fd00:99:0:1::20"}, Attached: true}
	ens7 = lab.ENISpec{Slot: 2, Name: "ens7", MAC: "02:00:00:00:07:07", DeviceNumber: 2,
		PrivateIPs: []string{"10.99.2.10"}}
)

func startSession(ctx context.Context, o options, name, refresh string) (*session, error) {
	logf := func(string, ...any) {}
	if o.verbose {
		logf = func(format string, args ...any) { fmt.Fprintf(o.out, "  lab: "+format+"\n", args...) }
	}
	l, err := lab.New(ctx, lab.Options{
		Name:     name,
		Scenario: &scenario.Scenario{InstanceID: "i-0de30000000000001", MAC: ens5.MAC},
		ENIs:     []lab.ENISpec{ens5, ens6, ens7},
		Logf:     logf,
	})
	if err != nil {
		return nil, err
	}
	s := &session{o: o, l: l}
	if err := s.setup(o.agent, refresh); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *session) setup(agent, refresh string) error {
	if err := s.l.SetupBackend(s.o.backend, s.o.repo); err != nil {
		return err
	}
	config := lab.AgentConfig(s.o.backend, refresh, "")
	if s.o.quiet {
		// As shipped: the idle figures must not include the lab's debug logging.
		config = strings.Replace(config, `log_level = "debug"`, `log_level = "info"`, 1)
	}
	if err := s.l.WriteInstanceFile("/etc/ec2-net-utils.conf", config, 0o644); err != nil {
		return err
	}
	lb, err := lookupBackend(s.o.backend)
	if err != nil {
		return err
	}
	for _, e := range []lab.ENISpec{ens5, ens6} {
		if e.Name != ens5.Name && lb.agentLeases {
			continue // the agent starts its dhclient
		}
		if err := s.waitAddr(e.Name, e.PrivateIPs[0]+"/24"); err != nil {
			return err
		}
	}
	p, err := s.l.Start("agent", agent, "daemon", "--config", "/etc/ec2-net-utils.conf")
	if err != nil {
		return err
	}
	s.agent = p
	if err := s.waitLog("ready: first reconcile done"); err != nil {
		return err
	}
	if lb.agentLeases {
		return s.waitAddr(ens6.Name, ens6.PrivateIPs[0]+"/24")
	}
	return nil
}

func (s *session) close() {
	if err := s.l.Close(); err != nil {
		fmt.Fprintf(s.o.out, "lab cleanup: %v\n", err)
	}
}

func (s *session) waitLog(needle string) error {
	return s.l.WaitFor(context.Background(), "agent log: "+needle, 15*time.Second, func() (bool, error) {
		select {
		case <-s.agent.Done():
			return false, fmt.Errorf("agent exited:\n%s", s.agent.Log())
		default:
		}
		return strings.Contains(s.agent.Log(), needle), nil
	})
}

// ip runs iproute2 inside the instance, as a user on the instance would.
func (s *session) ip(args ...string) string {
	out, err := s.l.Command(context.Background(), append([]string{"ip"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s *session) waitAddr(link, cidr string) error {
	return s.l.WaitFor(context.Background(), link+" has "+cidr, 15*time.Second, func() (bool, error) {
		return strings.Contains(s.ip("-o", "addr", "show", "dev", link), " "+cidr+" "), nil
	})
}

// waitRoute waits for a route in table, as `ip route show table` prints it.
func (s *session) waitRoute(table int, route string) error {
	return s.l.WaitFor(context.Background(), fmt.Sprintf("table %d has %s", table, route), 15*time.Second, func() (bool, error) {
		return strings.Contains(s.ip("route", "show", "table", fmt.Sprint(table)), route), nil
	})
}

// waitAddr6 waits for an IPv6 address on link that a socket can bind (DAD done).
func (s *session) waitAddr6(link, addr string) error {
	return s.l.WaitFor(context.Background(), link+" has "+addr, 15*time.Second, func() (bool, error) {
		for _, line := range strings.Split(s.ip("-6", "-o", "addr", "show", "dev", link), "\n") {
			if strings.Contains(line, " "+addr+"/") && !strings.Contains(line, "tentative") {
				return true, nil
			}
		}
		return false, nil
	})
}

func (s *session) hasRule(prio int, from string) bool {
	family := "-4"
	if strings.Contains(from, ":") {
		family = "-6"
	}
	return strings.Contains(s.ip(family, "rule", "show", "priority", fmt.Sprint(prio)), "from "+from+" lookup")
}

func (s *session) waitRule(prio int, from string, present bool) error {
	what := fmt.Sprintf("rule %d from %s present=%v", prio, from, present)
	return s.l.WaitFor(context.Background(), what, 15*time.Second, func() (bool, error) {
		return s.hasRule(prio, from) == present, nil
	})
}
