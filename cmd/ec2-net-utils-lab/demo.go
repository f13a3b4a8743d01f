package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// demo walks through what the agent does on an instance, showing the state the way a user would
// look at it.
func demo(ctx context.Context, o options) error {
	say := func(format string, args ...any) { fmt.Fprintf(o.out, "\n==> "+format+"\n", args...) }
	show := func(title, text string) {
		fmt.Fprintf(o.out, "  $ %s\n", title)
		for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			fmt.Fprintf(o.out, "    %s\n", line)
		}
	}

	lb, err := lookupBackend(o.backend)
	if err != nil {
		return err
	}
	say("Building a simulated VPC: a VPC router namespace (DHCP, fake IMDS on 169.254.169.254, the "+
		"source/destination check) and an instance namespace running %s, with two ENIs attached", lb.manager)
	s, err := startSession(ctx, o, "demo", "2s")
	if err != nil {
		return err
	}
	defer func() {
		say("Cleaning up: stopping the agent and %s, deleting the namespaces", o.backend)
		s.close()
	}()
	if err := s.waitRule(10001, "10.99.1.20", true); err != nil {
		return err
	}
	// The rules are in place before the manager has finished taking the ENIs over from its
	// packaged configuration (it re-leases their addresses once): show the state once it has.
	for _, wait := range []func() error{
		func() error { return s.waitAddr(ens5.Name, "10.99.0.10/24") },
		func() error { return s.waitAddr(ens5.Name, "10.99.0.20/32") },
		func() error { return s.waitAddr(ens6.Name, "10.99.1.10/24") },
		func() error { return s.waitAddr(ens6.Name, "10.99.1.20/32") },
		func() error { return s.waitRoute(10001, "default via 10.99.1.1 dev ens6") },
	} {
		if err := wait(); err != nil {
			return err
		}
	}
	say("The daemon is running (%s backend). What it planned:", o.backend)
	plan, _ := s.l.Command(ctx, o.agent, "plan", "--config", "/etc/ec2-net-utils.conf").CombinedOutput()
	show("ec2-net-utils plan", string(plan))
	show("ip -br addr", s.ip("-br", "addr"))
	show("ip rule", s.ip("rule"))
	show("ip route", s.ip("route"))
	show("ip route show table 10001", s.ip("route", "show", "table", "10001"))
	show("find "+strings.Join(lb.dirs, " ")+" -type f", s.listFiles(lb))

	say("Traffic from every address leaves by its own ENI, so the VPC's source/destination check lets it through")
	s.pingAll(ctx, s.l.InternetAddr(), "10.99.0.10", "10.99.0.20", "10.99.1.10", "10.99.1.20")

	say("ens6 is dual-stack: its first IPv6 address comes by DHCPv6, the second (fd00:99:0:1::20) the agent " +
		"assigns; both get a rule at ens6's priority, and table 10001 the RA router as default")
	for _, wait := range []func() error{
		func() error { return s.waitAddr6(ens6.Name, ens6.IPv6s[0]) },
		func() error { return s.waitAddr6(ens6.Name, ens6.IPv6s[1]) },
		func() error { return s.waitRule(10001, ens6.IPv6s[1], true) },
	} {
		if err := wait(); err != nil {
			return err
		}
	}
	show("ip -6 -br addr show ens6", s.ip("-6", "-br", "addr", "show", "ens6"))
	show("ip -6 rule", s.ip("-6", "rule"))
	show("ip -6 route show table 10001", s.ip("-6", "route", "show", "table", "10001"))
	s.pingAll(ctx, s.l.InternetAddr6(), ens6.IPv6s...)

	say("Hot-attaching a third ENI (ens7, device-number 2)")
	start := time.Now()
	if err := s.l.Attach("ens7"); err != nil {
		return err
	}
	if err := s.waitRule(10002, "10.99.2.10", true); err != nil {
		return err
	}
	fmt.Fprintf(o.out, "  routed %v after attach\n", time.Since(start).Round(time.Millisecond))
	if lb.agentLeases {
		if err := s.waitAddr("ens7", "10.99.2.10/24"); err != nil {
			return err
		}
		fmt.Fprintf(o.out, "  DHCP address from the agent's dhclient %v after attach\n", time.Since(start).Round(time.Millisecond))
	}
	show("ip rule", s.ip("rule"))
	show("ip route show table 10002", s.ip("route", "show", "table", "10002"))

	say("Assigning a secondary IP (10.99.2.30) to ens7 in EC2 (IMDS); the daemon picks it up at its next refresh")
	start = time.Now()
	if err := s.l.UpdateIMDS(func(sc *scenario.Scenario) {
		keys := sc.Interfaces[ens7.MAC]
		keys[core.KeyLocalIPv4s] = append(keys[core.KeyLocalIPv4s], "10.99.2.30")
	}); err != nil {
		return err
	}
	if err := s.waitAddr("ens7", "10.99.2.30/32"); err != nil {
		return err
	}
	if err := s.waitRule(10002, "10.99.2.30", true); err != nil {
		return err
	}
	fmt.Fprintf(o.out, "  configured %v after the IMDS change\n", time.Since(start).Round(time.Millisecond))
	show("ip -br addr show ens7", s.ip("-br", "addr", "show", "ens7"))
	show("ip rule show priority 10002", s.ip("rule", "show", "priority", "10002"))
	s.pingAll(ctx, s.l.InternetAddr(), "10.99.2.10", "10.99.2.30")

	say("Detaching ens7: its files, rules and routes go away, and %s", lb.detach)
	if err := s.l.Detach("ens7"); err != nil {
		return err
	}
	if err := s.waitRule(10002, "10.99.2.10", false); err != nil {
		return err
	}
	show("ip rule", s.ip("rule"))
	show("find "+strings.Join(lb.dirs, " ")+" -type f", s.listFiles(lb))
	show("agent log (info and above)", infoLines(s.agent.Log()))
	return nil
}

// pingAll pings dst from each source address, the way `ping -I <src> <dst>` would (-6 for IPv6).
func (s *session) pingAll(ctx context.Context, dst string, srcs ...string) {
	for _, src := range srcs {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := s.l.Ping(pctx, src, dst)
		cancel()
		verdict := "reply"
		if err != nil {
			verdict = "NO REPLY: " + err.Error()
		}
		family := ""
		if strings.Contains(src, ":") {
			family = "-6 "
		}
		fmt.Fprintf(s.o.out, "  ping %s-I %-15s %s: %s\n", family, src, dst, verdict)
	}
}

// listFiles lists the agent's generated files, sorted.
func (s *session) listFiles(lb labBackend) string {
	args := append(append([]string{"find"}, lb.dirs...), "-type", "f")
	out, err := s.l.Command(context.Background(), args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		if lb.keep == nil || lb.keep(f) {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	return strings.Join(files, "\n")
}

func infoLines(log string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "[DEBUG]") && !strings.Contains(l, "[TRACE]") && strings.TrimSpace(l) != "" {
			keep = append(keep, l)
		}
	}
	return strings.Join(slices.Clip(keep), "\n")
}
