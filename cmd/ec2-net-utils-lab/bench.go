package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
)

// benchRuleRestore deletes one of the agent's source rules by hand, n times, and measures how
// long it takes to come back. The deletions are spaced further apart than the lab's
// rule_restore_interval (1s), so each is a first repair, not a fight the rate limit slows down.
func benchRuleRestore(s *session, nl *netlink.Handle, n int) error {
	var back []time.Duration
	for i := range n {
		time.Sleep(1500 * time.Millisecond)
		r := netlink.NewRule()
		r.Priority, r.Table = 10001, 10001
		r.Src = &net.IPNet{IP: net.IPv4(10, 99, 1, 10), Mask: net.CIDRMask(32, 32)}
		if err := nl.RuleDel(r); err != nil {
			return fmt.Errorf("deletion %d: ip rule del %v: %w", i+1, r, err)
		}
		start := time.Now()
		for !hasSourceRule(nl, 10001, "10.99.1.10") {
			if time.Since(start) > 15*time.Second {
				return fmt.Errorf("deletion %d: rule not back after 15s\n%s", i+1, s.agent.Log())
			}
			time.Sleep(2 * time.Millisecond)
		}
		back = append(back, time.Since(start))
	}
	if n > 0 {
		fmt.Fprintf(s.o.out, "rule deleted by hand -> back, %d deletions 1.5s apart: %s\n", n, spread(back))
	}
	return nil
}

// hasSourceRule reports whether the rule "<table>: from <from> lookup <table>" is in the kernel,
// with one netlink dump (not `ip rule`: a process per poll blurs the figures).
func hasSourceRule(nl *netlink.Handle, table int, from string) bool {
	rules, err := nl.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(rules, func(r netlink.Rule) bool {
		return r.Priority == table && r.Table == table && r.Src != nil && r.Src.IP.String() == from
	})
}

// agentDHClients are the dhclients in the instance that run the agent's script.
func (s *session) agentDHClients() []int {
	inst, err := os.Stat("/run/netns/" + s.l.Namespaces()[1])
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if err != nil || filepath.Base(args[0]) != "dhclient" || !slices.Contains(args, lab.IfcfgScript) {
			continue
		}
		if ns, err := os.Stat(filepath.Join("/proc", e.Name(), "ns", "net")); err == nil && os.SameFile(ns, inst) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func hasAddr(nl *netlink.Handle, link, cidr string) bool {
	l, err := nl.LinkByName(link)
	if err != nil {
		return false
	}
	addrs, err := nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IPNet.String() == cidr })
}

// cpuTime is the time all of the process's threads spent on a CPU, from
// /proc/<pid>/task/*/schedstat (nanoseconds; /proc/<pid>/stat counts 10 ms ticks, too coarse
// for an idle daemon).
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("read CPU time of pid %d: no schedstat (%v)", pid, err)
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", t, err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}

func rssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.Fields(rest)[0])
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// children counts the agent's child processes: it should never start any.
func children(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return -1
	}
	return len(strings.Fields(string(b)))
}

// spread is "min / median / max" of durations.
func spread(d []time.Duration) string {
	d = slices.Clone(d)
	slices.Sort(d)
	return fmt.Sprintf("min %v / median %v / max %v", ms(d[0]), ms(d[len(d)/2]), ms(d[len(d)-1]))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
