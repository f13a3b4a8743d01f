package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

// cniENI is the ENI the VPC CNI emulator attaches: its primary address for the host, the others
// for pods.
func cniENI() lab.ENISpec {
	s := secondENI()
	s.Attached = false
	return s
}

// containerLinksUnmanaged keeps the network managers off the containers' host veths. The lab's
// ENIs are veths, so the package's base configuration, adapted to the lab, matches every veth;
// on EC2 it matches ENI drivers only and a container's veth is never taken. Runs before the
// manager starts (envOptions.beforeManager). Not "eni*": networkd's Name= also matches
// altnames, and every ENI has one of the form eni-<id> (found by this test: networkd dropped
// ens5 at its next reload).
func containerLinksUnmanaged(l *lab.Lab) error {
	if err := l.WriteInstanceFile("/etc/systemd/network/10-lab-containers.network",
		"[Match]\nName=eni[0-9]* veth*\n\n[Link]\nUnmanaged=yes\n", 0o644); err != nil {
		return err
	}
	return l.WriteInstanceFile("/etc/NetworkManager/conf.d/10-lab-containers.conf",
		"[device-lab-containers]\nmatch-device=interface-name:eni*;interface-name:veth*\nmanaged=0\n", 0o644)
}

// vpcCNI plays the Amazon VPC CNI (amazon-vpc-cni-k8s pkg/networkutils, routed-eni-cni-plugin):
// its configuration file, the ENIs it attaches and configures itself (primary address, link up,
// table device-number+1 with the gateway and default route), and pods: a veth into a namespace of
// their own, the pod address as /32 inside with 169.254.1.1 as a static gateway, a /32 route in
// main on the host, and the rules `to <pod> lookup main` at 512 and, for pods on secondary ENIs,
// `from <pod> lookup <ENI table>` at 1536.
type vpcCNI struct {
	e    *env
	pods []*lab.Container
}

func newVPCCNI(e *env) *vpcCNI {
	e.t.Helper()
	must(e.t, e.l.WriteInstanceFile("/etc/cni/net.d/10-aws.conflist",
		`{"cniVersion": "0.4.0", "name": "aws-cni", "plugins": [{"name": "aws-cni", "type": "aws-cni"}]}`+"\n", 0o644))
	// The CNI turns forwarding on. EC2 delivers a secondary address to its ENI without asking;
	// the lab's router ARPs for it, so the ENI answers for the pods behind it, as EC2 would.
	must(e.t, e.l.InstanceSysctl("net.ipv4.ip_forward", "1"))
	must(e.t, e.l.InstanceSysctl("net.ipv4.conf.ens5.proxy_arp", "1"))
	c := &vpcCNI{e: e}
	e.t.Cleanup(func() {
		for _, p := range c.pods {
			p.Close()
		}
	})
	return c
}

// cniTable is the CNI's table of an ENI on card 0 (CalculateRouteTableId: device-number + 1).
func cniTable(spec lab.ENISpec) int { return spec.DeviceNumber + 1 }

// attach attaches the ENI and configures it the way the CNI does.
func (c *vpcCNI) attach(spec lab.ENISpec) {
	e := c.e
	e.t.Helper()
	must(e.t, e.l.Attach(spec.Name))
	var link netlink.Link
	e.waitFor(spec.Name+" in the instance", func() (bool, error) {
		var err error
		link, err = e.nl.LinkByName(spec.Name)
		return err == nil, nil
	})
	if !e.backend.agentLeases {
		// The package's base configuration makes the manager take every ENI as it appears
		// (networkd's 80-ec2.network, NetworkManager's default profile), and NetworkManager
		// flushes the link's routes when it activates it. The CNI configures an ENI once, after
		// attaching it; do so after the manager, as on a host where the CNI wins that race.
		e.waitForAddress(spec.Name, spec.PrivateIPs[0]+"/24")
	}
	must(e.t, e.nl.LinkSetUp(link))
	addr, _ := netlink.ParseAddr(spec.PrivateIPs[0] + "/24")
	if err := e.nl.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		e.t.Fatalf("CNI: ip addr add %s dev %s: %v", addr, spec.Name, err)
	}
	gw := net.ParseIP(fmt.Sprintf("10.99.%d.1", spec.Slot))
	table := cniTable(spec)
	for _, r := range []*netlink.Route{
		{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK, Table: table},
		{LinkIndex: link.Attrs().Index, Dst: mustIPNet("0.0.0.0/0"), Gw: gw, Table: table},
	} {
		must(e.t, e.nl.RouteReplace(r))
	}
	must(e.t, e.l.InstanceSysctl("net.ipv4.conf."+spec.Name+".proxy_arp", "1"))
}

// addPod gives address ip of ENI spec to a new pod.
func (c *vpcCNI) addPod(spec lab.ENISpec, ip string, primaryENI bool) {
	e := c.e
	e.t.Helper()
	hostVeth := fmt.Sprintf("eni%d", len(c.pods))
	pod, err := e.l.NewContainer(hostVeth)
	must(e.t, err)
	c.pods = append(c.pods, pod)
	host, err := e.nl.LinkByName(hostVeth)
	must(e.t, err)

	ph, err := pod.Netlink()
	must(e.t, err)
	defer ph.Close()
	eth0, err := ph.LinkByName("eth0")
	must(e.t, err)
	addr, _ := netlink.ParseAddr(ip + "/32")
	must(e.t, ph.AddrAdd(eth0, addr))
	gw := net.ParseIP("169.254.1.1")
	must(e.t, ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}))
	must(e.t, ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: mustIPNet("0.0.0.0/0"), Gw: gw}))
	must(e.t, ph.NeighAdd(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, IP: gw, HardwareAddr: host.Attrs().HardwareAddr,
		State: netlink.NUD_PERMANENT, Family: netlink.FAMILY_V4}))

	must(e.t, e.nl.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: mustIPNet(ip + "/32"), Scope: netlink.SCOPE_LINK}))
	must(e.t, e.nl.RuleAdd(newRule(512, "", ip+"/32", unix.RT_TABLE_MAIN, "")))
	if !primaryENI {
		must(e.t, e.nl.RuleAdd(newRule(1536, ip+"/32", "", cniTable(spec), "")))
	}
}

// podPings checks every pod reaches the internet address from its own address, through the
// VPC's source/destination check.
func (c *vpcCNI) podPings(when string, ips ...string) {
	e := c.e
	e.t.Helper()
	for i, p := range c.pods {
		var err error
		for range 3 { // the first echo may race ARP, as in mustPing
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = p.Ping(ctx, ips[i], e.l.InternetAddr())
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			e.t.Errorf("%s: pod %s cannot reach the internet address: %v", when, ips[i], err)
		}
	}
}

// cniState is what the CNI installed: its rules and its tables' routes. The agent must not touch it.
func (c *vpcCNI) state(tables ...int) string {
	e := c.e
	e.t.Helper()
	all, err := e.nl.RuleList(netlink.FAMILY_ALL)
	must(e.t, err)
	var out []string
	for _, r := range all {
		if r.Priority == 512 || r.Priority == 1536 {
			out = append(out, ruleTuple(r))
		}
	}
	slices.Sort(out)
	for _, t := range tables {
		out = append(out, fmt.Sprintf("table %d: %v", t, e.routes(t)))
	}
	return strings.Join(out, "\n")
}

// assertNoPodAddresses checks the agent put none of the pods' addresses on the host: a /32 there
// makes the host, not the pod, receive the pod's replies.
func (e *env) assertNoPodAddresses(ips ...string) {
	e.t.Helper()
	for _, link := range []string{"ens5", "ens6", "ens7"} {
		for _, a := range e.addresses(link) {
			for _, ip := range ips {
				if a == ip+"/32" {
					e.t.Errorf("pod address %s assigned to %s", a, link)
				}
			}
		}
	}
}

// An EKS node: the VPC CNI runs its pods on the primary ENI's and its own ENI's secondary
// addresses. Installing the agent must change nothing the pods rely on — whether the CNI was
// there first (a rebooted node) or arrives while the agent runs (aws-node starting on a fresh
// node), at a restart, and when a refresh sees the new secondary addresses the CNI got for a
// new pod.
func TestEKSNodePodsKeepWorkingWithTheAgent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		for _, agentFirst := range []bool{false, true} {
			name := "CNI first"
			if agentFirst {
				name = "agent first"
			}
			t.Run(name, func(t *testing.T) { eksNode(t, bc, agentFirst) })
		}
	})
}

func eksNode(t *testing.T, bc backendCase, agentFirst bool) {
	eni := cniENI()
	e := newEnv(t, bc, envOptions{enis: []lab.ENISpec{primaryENI(), eni}, beforeManager: containerLinksUnmanaged})
	if agentFirst {
		e.startAgent()
		e.waitForAddress("ens5", "10.99.0.20/32") // no CNI yet: an ordinary host
	}
	cni := newVPCCNI(e)
	cni.attach(eni)
	if agentFirst {
		// The address the agent gave ens5 before the CNI existed is a pod's now.
		e.waitNoAddress("ens5", "10.99.0.20/32")
	}
	cni.addPod(primaryENI(), "10.99.0.20", true)
	cni.addPod(eni, "10.99.1.20", false)
	pods := []string{"10.99.0.20", "10.99.1.20"}
	before := cni.state(cniTable(eni))
	if !agentFirst {
		cni.podPings("before the agent starts", pods...)
		e.startAgent()
	}
	e.waitLog("the CNI seen", "VPC CNI detected")
	time.Sleep(1500 * time.Millisecond) // a refresh passes
	cni.podPings("with the agent running", pods...)
	e.assertNoPodAddresses(pods...)
	if rs := e.rules(); slices.ContainsFunc(rs, func(r rule) bool { return r.Priority == 10001 }) {
		t.Errorf("source rules for the CNI's ENI: %v", rs)
	}
	if got := cni.state(cniTable(eni)); got != before {
		t.Errorf("the CNI's rules or routes changed:\nbefore:\n%s\nafter:\n%s", before, got)
	}
	// (The pods' veths are listed as ignored too: in the lab, veth is the ENI driver.)
	if plan := e.planJSON(); len(plan.Interfaces) != 1 || len(plan.Interfaces[0].Addresses) != 0 ||
		!slices.ContainsFunc(plan.Ignored, func(i core.Ignored) bool { return i.Name == "ens6" && strings.Contains(i.Reason, "VPC CNI") }) {
		t.Errorf("plan on the EKS node: interfaces %+v, ignored %+v; want ens5 without addresses, ens6 left to the VPC CNI",
			plan.Interfaces, plan.Ignored)
	}
	e.assertStatusLeftAlone("ens6", "VPC CNI")

	e.stopAgent()
	e.startAgent()
	time.Sleep(1500 * time.Millisecond)
	cni.podPings("after an agent restart", pods...)

	// The CNI takes one more address for a new pod; IMDS lists it at the next refresh.
	must(t, e.l.UpdateIMDS(func(s *scenario.Scenario) {
		ips := s.Interfaces[eni.MAC][core.KeyLocalIPv4s]
		s.Interfaces[eni.MAC][core.KeyLocalIPv4s] = append(ips, "10.99.1.30")
	}))
	cni.addPod(eni, "10.99.1.30", false)
	pods = append(pods, "10.99.1.30")
	time.Sleep(2500 * time.Millisecond) // two refreshes see the new address
	cni.podPings("after a refresh with a new secondary address", pods...)
	e.assertNoPodAddresses(pods...)
	if got := cni.state(cniTable(eni)); !strings.Contains(got, "10.99.1.30") {
		t.Errorf("the CNI's rule for the new pod is missing:\n%s", got)
	}
	e.mustPing("10.99.0.10") // the host itself still works
	if t.Failed() {
		t.Logf("agent log:\n%s", e.agent.Log())
	}
}

// amazon-ec2-net-utils 2.x is disabled on EKS and kops images by masking or emptying its udev
// rule. The agent honours the same opt-out: it says so once and configures nothing; removing
// the opt-out makes it manage the ENIs at its next pass.
func TestOptOutOf2xMakesTheAgentStandBack(t *testing.T) {
	const udevRule = "/etc/udev/rules.d/99-vpc-policy-routes.rules"
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		for _, variant := range []string{"masked", "empty"} {
			t.Run(variant, func(t *testing.T) {
				e := newEnv(t, bc, envOptions{})
				if variant == "empty" {
					must(t, e.l.WriteInstanceFile(udevRule, "", 0o644))
				} else {
					must(t, e.l.WriteInstanceFile("/etc/udev/rules.d/.keep", "", 0o644))
					out, err := e.l.Command(context.Background(), "ln", "-s", "/dev/null", udevRule).CombinedOutput()
					if err != nil {
						t.Fatalf("ln -s /dev/null %s: %v: %s", udevRule, err, out)
					}
				}
				files := e.files()
				// Not startAgent: with ifcfg it waits for the leases the agent's dhclients get,
				// and an agent that stands back starts none.
				p, err := e.l.Start("agent", agentBin, "daemon", "--config", "/etc/ec2-net-utils.conf")
				must(t, err)
				e.agent = p
				e.waitLog("the agent says it stands back", "standing back: managing no ENI")
				time.Sleep(1500 * time.Millisecond) // a refresh passes: still nothing
				if rs := e.rules(); slices.ContainsFunc(rs, func(r rule) bool { return core.OwnsRule(r.Priority, r.Table) }) {
					t.Errorf("source rules added although the agent stands back: %v", rs)
				}
				e.assertNoPodAddresses("10.99.0.20", "10.99.1.20")
				if got := keys(e.files()); !slices.Equal(got, keys(files)) {
					t.Errorf("files changed although the agent stands back: %v, before %v", got, keys(files))
				}
				if !strings.Contains(e.agent.Log(), variant) {
					t.Errorf("the log does not say the rule is %s:\n%s", variant, e.agent.Log())
				}
				// plan and apply decide as the daemon does.
				plan := e.planJSON()
				if len(plan.Interfaces) != 0 || len(plan.Ignored) != 2 {
					t.Errorf("plan: %d interfaces, ignored %v; want none planned, ens5 and ens6 ignored", len(plan.Interfaces), plan.Ignored)
				}
				for _, ig := range plan.Ignored {
					if !strings.Contains(ig.Reason, udevRule+" is "+variant) {
						t.Errorf("plan: %s ignored for %q, want the opt-out named", ig.Name, ig.Reason)
					}
				}
				e.assertStatusLeftAlone("ens6", udevRule+" is "+variant)
				if changes := e.run("apply"); !strings.Contains(changes, `"reloads": 0`) || strings.Contains(changes, "written") {
					t.Errorf("apply changed something although the agent stands back: %s", changes)
				}
				if got := keys(e.files()); !slices.Equal(got, keys(files)) {
					t.Errorf("files changed by apply: %v, before %v", got, keys(files))
				}

				out, err := e.l.Command(context.Background(), "rm", udevRule).CombinedOutput()
				if err != nil {
					t.Fatalf("rm %s: %v: %s", udevRule, err, out)
				}
				e.waitRule(ens6Rule20, true)
				e.waitForAddress("ens6", "10.99.1.20/32")
				e.mustPing("10.99.1.20")
			})
		}
	})
}

// secondary_addresses = false: another agent (ECS awsvpc, Docker macvlan/ipvlan) owns the
// secondary addresses. The agent assigns none, but routes traffic from them by their ENI.
func TestSecondaryAddressesOffKeepsRulesWithoutAddresses(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{interfaces: "secondary_addresses = false"})
		e.startAgent()
		e.waitRule(ens6Rule10, true)
		e.waitRule(ens6Rule20, true)
		time.Sleep(1500 * time.Millisecond) // a refresh passes: still no addresses
		e.assertNoPodAddresses("10.99.0.20", "10.99.1.20")
		e.mustPing("10.99.1.10")

		// The other agent puts the address where it wants it (here: on ens6 itself, as a
		// macvlan in L3 mode would behave); the agent's rule makes it leave by ens6.
		link, err := e.nl.LinkByName("ens6")
		must(t, err)
		addr, _ := netlink.ParseAddr("10.99.1.20/32")
		must(t, e.nl.AddrAdd(link, addr))
		unpin := e.pinMainDefaultViaPrimary()
		e.mustPing("10.99.1.20")
		unpin()
	})
}

// Docker: a container on a bridge, its port published on the primary ENI's address. With a
// secondary ENI configured (and no primary rules, the default: #97), the container's reply
// still leaves by the primary ENI, so it passes the VPC's source/destination check.
func TestDockerPublishedPortAnswersThroughThePrimaryENI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		e := newEnv(t, bc, envOptions{beforeManager: containerLinksUnmanaged})
		e.startAgent()
		e.waitRule(ens6Rule10, true)
		e.waitFor("ens6's table routes", func() (bool, error) { return slices.Equal(e.routes(10001), ens6Table), nil })
		// Steady state: the manager has applied the agent's configuration to ens5 too (it may
		// re-acquire its lease while switching), and a refresh has passed.
		e.waitFor("ens5's table routes", func() (bool, error) {
			return slices.Contains(e.routes(10000), "default via 10.99.0.1 dev ens5"), nil
		})
		time.Sleep(1500 * time.Millisecond)

		// docker0 172.17.0.1/16, a container at 172.17.0.2 behind it, port 8080 of 10.99.0.10
		// DNAT'd to its port 80, and masquerading for what leaves the bridge.
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "docker0"}}
		must(t, e.nl.LinkAdd(br))
		bra, _ := netlink.ParseAddr("172.17.0.1/16")
		must(t, e.nl.AddrAdd(br, bra))
		must(t, e.nl.LinkSetUp(br))
		ctr, err := e.l.NewContainer("veth0d0c")
		must(t, err)
		t.Cleanup(ctr.Close)
		veth, err := e.nl.LinkByName("veth0d0c")
		must(t, err)
		must(t, e.nl.LinkSetMaster(veth, br))
		ch, err := ctr.Netlink()
		must(t, err)
		defer ch.Close()
		eth0, err := ch.LinkByName("eth0")
		must(t, err)
		ca, _ := netlink.ParseAddr("172.17.0.2/16")
		must(t, ch.AddrAdd(eth0, ca))
		must(t, ch.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: mustIPNet("0.0.0.0/0"), Gw: net.ParseIP("172.17.0.1")}))
		must(t, e.l.InstanceSysctl("net.ipv4.ip_forward", "1"))
		must(t, e.l.WriteInstanceFile("/etc/docker-lab.nft", `table ip dockerlab {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.99.0.10 tcp dport 8080 dnat to 172.17.0.2:80
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.17.0.0/16 oifname != "docker0" masquerade
	}
}
`, 0o644))
		if out, err := e.l.Command(context.Background(), "nft", "-f", "/etc/docker-lab.nft").CombinedOutput(); err != nil {
			t.Fatalf("nft -f: %v: %s", err, out)
		}

		ln, err := ctr.Listen("172.17.0.2:80")
		must(t, err)
		defer ln.Close()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = io.WriteString(conn, "hello from the container\n")
				conn.Close()
			}
		}()

		drops, err := e.l.Drops()
		must(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := e.l.DialFromInternet(ctx, "10.99.0.10:8080")
		if err != nil {
			t.Fatalf("published port on the primary ENI does not answer: %v", err)
		}
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || string(got) != "hello from the container\n" {
			t.Errorf("reply from the container: %q, %v", got, err)
		}
		after, err := e.l.Drops()
		must(t, err)
		if after["vpc0"] != drops["vpc0"] || after["vpc1"] != drops["vpc1"] {
			t.Errorf("the source/destination check dropped packets: before %v, after %v", drops, after)
		}
	})
}

// run runs an ec2-net-utils command in the instance with the env's configuration and returns
// its standard output.
func (e *env) run(args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := e.l.Command(ctx, append([]string{agentBin}, append(args, "--config", "/etc/ec2-net-utils.conf")...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("ec2-net-utils %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// planJSON is `ec2-net-utils plan --json`.
func (e *env) planJSON() core.Plan {
	e.t.Helper()
	var p core.Plan
	must(e.t, json.Unmarshal([]byte(e.run("plan", "--json")), &p))
	return p
}
