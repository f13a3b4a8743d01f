package networkmanager

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v3"
	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netlink"

	"github.com/ec2-net-utils/ec2-net-utils/core"
	"github.com/ec2-net-utils/ec2-net-utils/internal/lab"
	"github.com/ec2-net-utils/ec2-net-utils/internal/scenario"
)

const labPrefix = "nmbackend"

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.Sweep(labPrefix); err != nil {
			fmt.Fprintln(os.Stderr, "networkmanager: lab sweep:", err)
		}
	}
	os.Exit(m.Run())
}

// nmLab is a lab with NetworkManager as the package installs it, the agent's backend on the lab's
// bus, and a D-Bus monitor counting what reconfigures devices.
type nmLab struct {
	t       *testing.T
	l       *lab.Lab
	h       *netlink.Handle
	conn    *dbus.Conn
	reloads *lab.CallCounter
	b       *Backend
	// total is the sum of Changes.Reloads of every apply, to hold against the bus's count.
	total int
}

func newNMLab(t *testing.T, persist bool, enis ...lab.ENISpec) *nmLab {
	t.Helper()
	lab.RequireRoot(t)
	l, err := lab.New(context.Background(), lab.Options{
		Name:     labPrefix,
		Scenario: &scenario.Scenario{InstanceID: "i-0123456789abcdef0"},
		Logf:     t.Logf,
		ENIs:     enis,
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &nmLab{t: t, l: l}
	t.Cleanup(func() {
		if t.Failed() {
			if m := l.Manager(); m != nil {
				log := m.Log()
				t.Logf("NetworkManager log (tail):\n%s", log[max(0, len(log)-8000):])
			}
		}
		if n.reloads != nil {
			n.reloads.Close()
		}
		if n.conn != nil {
			n.conn.Close()
		}
		if n.h != nil {
			n.h.Close()
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	n.must(l.SetupBackend("networkmanager", filepath.Join("..", "..")))
	n.h, err = l.InstanceNetlink()
	n.must(err)
	n.conn, err = dbus.Connect(l.BusAddress())
	n.must(err)
	n.reloads, err = l.CountReloads("networkmanager")
	n.must(err)
	n.b = New(Options{Bus: n.conn, Persist: persist, Logger: testLogger(t)})
	return n
}

func (n *nmLab) must(err error) {
	n.t.Helper()
	if err != nil {
		n.t.Fatal(err)
	}
}

func (n *nmLab) apply(plan core.Plan, links []core.Link) core.Changes {
	n.t.Helper()
	rep, err := n.b.Apply(context.Background(), plan, links)
	ch := rep.Changes
	n.must(err)
	n.total += ch.Reloads
	return ch
}

func (n *nmLab) waitFor(what string, cond func() (bool, error)) {
	n.t.Helper()
	n.must(n.l.WaitFor(context.Background(), what, 10*time.Second, cond))
}

func (n *nmLab) hasAddr(link, cidr string) func() (bool, error) {
	return func() (bool, error) {
		l, err := n.h.LinkByName(link)
		if err != nil {
			return false, nil
		}
		as, err := n.h.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return false, err
		}
		return slices.ContainsFunc(as, func(a netlink.Addr) bool { return a.IPNet.String() == cidr }), nil
	}
}

func (n *nmLab) rules() []string {
	n.t.Helper()
	rs, err := n.h.RuleList(netlink.FAMILY_V4)
	n.must(err)
	var out []string
	for _, r := range rs {
		if r.Src != nil {
			out = append(out, fmt.Sprintf("%d from %s lookup %d", r.Priority, r.Src, r.Table))
		}
	}
	return out
}

func (n *nmLab) ping(src string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var err error
	for range 3 { // the first echo may race ARP on a link that just came up
		if err = n.l.Ping(ctx, src, n.l.InternetAddr()); err == nil {
			return nil
		}
	}
	return err
}

// nmcli runs nmcli in the instance, as a user would.
func (n *nmLab) nmcli(args ...string) string {
	n.t.Helper()
	out, err := n.l.Command(context.Background(), append([]string{"nmcli"}, args...)...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("nmcli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNMLabWithUserProfile is a lab with ens5 and ens6 (10.99.1.10, 10.99.1.20) and a profile of
// the user's for ens6, not active yet, named name, with the nmcli settings given.
func newNMLabWithUserProfile(t *testing.T, name string, settings ...string) *nmLab {
	t.Helper()
	n := newNMLab(t, false,
		lab.ENISpec{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", Attached: true},
		lab.ENISpec{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1,
			PrivateIPs: []string{"10.99.1.10", "10.99.1.20"}, Attached: true})
	n.nmcli(append([]string{"connection", "add", "type", "ethernet", "ifname", "ens6", "con-name", name,
		"connection.autoconnect-priority", "120"}, settings...)...)
	return n
}

// keyfile is where the profile named name is on disk, seen from outside the instance.
func (n *nmLab) keyfile(name string) string {
	return filepath.Join(n.l.EtcUpperDir(), "NetworkManager", "system-connections", name+".nmconnection")
}

// tagSkip tags a profile org.ec2-net-utils.skip=yes. nmcli cannot edit user data; the documented
// way is the keyfile.
func (n *nmLab) tagSkip(name string) {
	n.t.Helper()
	content, err := os.ReadFile(n.keyfile(name))
	n.must(err)
	n.must(os.WriteFile(n.keyfile(name), append(content, "\n[user]\n"+TagSkip+"=yes\n"...), 0o600))
	n.nmcli("connection", "load", "/etc/NetworkManager/system-connections/"+name+".nmconnection")
}

// userActivate activates a profile as a user does; the bus monitor counts that call too.
func (n *nmLab) userActivate(profile string) {
	n.t.Helper()
	n.nmcli("connection", "up", profile)
	n.total++
}

// checkReloads holds the bus's count of device reconfigurations against what Apply reported.
func (n *nmLab) checkReloads() {
	n.t.Helper()
	err := n.l.WaitFor(context.Background(), "bus monitor caught up", 5*time.Second, func() (bool, error) {
		return n.reloads.N() >= int64(n.total), nil
	})
	if got := n.reloads.N(); err != nil || got != int64(n.total) {
		n.t.Errorf("NetworkManager saw %d Reapply/activation calls, Apply reported %d", got, n.total)
	}
}

// TestLabSecondaryENIWithRealNetworkManager drives NetworkManager 1.42 in a simulated VPC with
// this backend alone (hand-built plans): the ENIs the packaged base profile brought up are taken
// over, their secondary addresses reach the internet, a refresh with nothing new does nothing,
// a removed secondary IP goes away by Reapply without the DHCP address ever going, other
// agents' rules survive, and detach deletes the profile without touching a device.
func TestLabSecondaryENIWithRealNetworkManager(t *testing.T) {
	n := newNMLab(t, false,
		lab.ENISpec{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", PrivateIPs: []string{"10.99.0.10", "10.99.0.20"}, Attached: true},
		lab.ENISpec{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1,
			PrivateIPs: []string{"10.99.1.10", "10.99.1.20"}, Attached: true})
	n.waitFor("ens5 leased 10.99.0.10 by the base profile", n.hasAddr("ens5", "10.99.0.10/24"))
	n.waitFor("ens6 leased 10.99.1.10 by the base profile", n.hasAddr("ens6", "10.99.1.10/24"))

	// Other tenants of the rule table, one of them pointing at our table (VPC CNI pod rule).
	for _, r := range []*netlink.Rule{rule(777, "192.0.2.0/24", 777), rule(1536, "10.99.1.77/32", 10001)} {
		n.must(n.h.RuleAdd(r))
	}
	p5, p6 := labPlans(t, n.h)
	plan := core.Plan{Interfaces: []core.InterfacePlan{p5, p6}}
	links := []core.Link{{Name: "ens5", Index: p5.Index, MAC: p5.MAC}, {Name: "ens6", Index: p6.Index, MAC: p6.MAC}}

	t.Run("ping from a secondary IP of ens6 reaches the internet; the base's DHCP address stays", func(t *testing.T) {
		deleted := watchDeletedAddrs(t, n.l)
		ch := n.apply(plan, links)
		want := []string{"applied:ens5", "ec2-net-utils-ens5", "applied:ens6", "ec2-net-utils-ens6"}
		if !slices.Equal(ch.Written, want) || ch.Reloads != 2 {
			t.Errorf("first apply: wrote %v with %d reloads; want %v and 2 (one Reapply each, no activation)", ch.Written, ch.Reloads, want)
		}
		for _, src := range []string{"10.99.1.20", "10.99.1.10", "10.99.0.20"} {
			n.waitFor("ping from "+src, func() (bool, error) { return n.ping(src) == nil, nil })
		}
		if got := n.nmcli("-g", "GENERAL.CONNECTION", "device", "show", "ens6"); strings.TrimSpace(got) != "ec2-net-utils-default" {
			t.Errorf("ens6 runs %q, want the base profile's activation kept", got)
		}
		if got := n.nmcli("-g", "NAME", "connection"); !strings.Contains(got, "ec2-net-utils-ens6") {
			t.Errorf("the agent's profile for ens6 is not listed:\n%s", got)
		}
		barrier(t, n, deleted)
		if got := deleted(); slices.Contains(got, "10.99.1.10") || slices.Contains(got, "10.99.0.10") {
			t.Errorf("a DHCP address was deleted during the take-over (deleted: %v)", got)
		}
	})

	t.Run("main holds each ENI's routes with the ENI's metric", func(t *testing.T) {
		want := []string{"10.99.0.0/24 ens5 512", "10.99.1.0/24 ens6 513", "default ens5 512", "default ens6 513"}
		var got []string
		err := n.l.WaitFor(context.Background(), "main settled", 5*time.Second, func() (bool, error) {
			var err error
			got, err = mainRoutes(n.h)
			return slices.Equal(got, want), err
		})
		if err != nil {
			t.Errorf("main table = %q, want %q", got, want)
		}
	})

	t.Run("a refresh with nothing new changes nothing", func(t *testing.T) {
		start := time.Now()
		if ch := n.apply(plan, links); ch.Changed() {
			t.Errorf("second apply changed something: %+v", ch)
		}
		t.Logf("no-op apply, 2 ENIs: %v", time.Since(start))
	})

	t.Run("a removed secondary IP goes away by Reapply; the DHCP address never goes", func(t *testing.T) {
		deleted := watchDeletedAddrs(t, n.l)
		n.must(n.l.UpdateIMDS(func(s *scenario.Scenario) {
			s.Interfaces["02:00:00:00:06:06"][core.KeyLocalIPv4s] = scenario.Value{"10.99.1.10"}
		}))
		p := &plan.Interfaces[1]
		p.Addresses, p.Rules = nil, p.Rules[:1]
		ch := n.apply(plan, links)
		if !slices.Equal(ch.Written, []string{"applied:ens6", "ec2-net-utils-ens6"}) || ch.Reloads != 1 {
			t.Errorf("apply: wrote %v with %d reloads; want the ens6 profile, its applied connection and 1 Reapply", ch.Written, ch.Reloads)
		}
		n.waitFor("10.99.1.20 removed from ens6", func() (bool, error) { return slices.Contains(deleted(), "10.99.1.20"), nil })
		n.waitFor("rule from 10.99.1.20 removed", func() (bool, error) {
			return !slices.Contains(n.rules(), "10001 from 10.99.1.20/32 lookup 10001"), nil
		})
		n.must(n.ping("10.99.1.10"))
		barrier(t, n, deleted)
		if got := deleted(); slices.Contains(got, "10.99.1.10") {
			t.Errorf("ens6's DHCP address was deleted during the change (deleted: %v)", got)
		}
		for _, want := range []string{"777 from 192.0.2.0/24 lookup 777", "1536 from 10.99.1.77/32 lookup 10001"} {
			if !slices.Contains(n.rules(), want) {
				t.Errorf("foreign rule %q did not survive: %v", want, n.rules())
			}
		}
		if ch := n.apply(plan, links); ch.Changed() {
			t.Errorf("apply after the change changed something: %+v", ch)
		}
	})

	t.Run("after a NetworkManager restart one Reapply per ENI puts the plan back", func(t *testing.T) {
		// NM assumes the base profile's activations again (its device state names them), with
		// the base's own settings; the kernel keeps the rules, table routes and addresses.
		n.must(n.l.RestartManager()) // the bus, and the monitor on it, stay
		n.waitFor("ens6 runs ec2-net-utils-default again", func() (bool, error) {
			d, err := dbusNM{n.conn}.Device(context.Background(), "ens6")
			if err != nil || d.State != gonm.NmDeviceStateActivated {
				return false, nil
			}
			var file string
			err = dbusNM{n.conn}.property(context.Background(), d.Active, gonm.ConnectionInterface, "Filename", &file)
			return err == nil && strings.HasSuffix(file, "/ec2-net-utils-default.nmconnection"), nil
		})
		if !slices.Contains(n.rules(), "10001 from 10.99.1.10/32 lookup 10001") {
			t.Errorf("the restart took ens6's rule: %v", n.rules())
		}
		ch := n.apply(plan, links)
		if want := []string{"applied:ens5", "applied:ens6"}; !slices.Equal(ch.Written, want) || ch.Reloads != 2 {
			t.Errorf("apply after the restart: wrote %v with %d reloads; want %v and 2 Reapply", ch.Written, ch.Reloads, want)
		}
		want := []string{"10.99.0.0/24 ens5 512", "10.99.1.0/24 ens6 513", "default ens5 512", "default ens6 513"}
		n.waitFor("main holds the ENIs' metrics again", func() (bool, error) {
			got, err := mainRoutes(n.h)
			return slices.Equal(got, want), err
		})
		if ch := n.apply(plan, links); ch.Changed() {
			t.Errorf("second apply after the restart changed %+v", ch)
		}
		n.must(n.ping("10.99.1.10"))
	})

	t.Run("detach deletes the profile and reconfigures nothing", func(t *testing.T) {
		n.must(n.l.Detach("ens6"))
		n.waitFor("NM forgot ens6", func() (bool, error) {
			_, err := dbusNM{n.conn}.Device(context.Background(), "ens6")
			return err != nil, nil
		})
		ch := n.apply(core.Plan{Interfaces: plan.Interfaces[:1]}, links[:1])
		if !slices.Equal(ch.Removed, []string{"ec2-net-utils-ens6"}) || len(ch.Written) != 0 || ch.Reloads != 0 {
			t.Errorf("detach: %+v; want ec2-net-utils-ens6 removed, nothing else", ch)
		}
		if out := n.nmcli("-g", "NAME", "connection"); strings.Contains(out, "ec2-net-utils-ens6") {
			t.Errorf("profile still listed after detach:\n%s", out)
		}
		if files, _ := filepath.Glob(n.l.InstancePath("/run/NetworkManager/system-connections/*ens6*")); len(files) != 0 {
			t.Errorf("keyfile left after detach: %v", files)
		}
	})
	n.checkReloads()
}

// TestLabUserProfileGetsRoutingThroughItsAppliedConnection: an ENI that runs a profile of the
// user's (here as cloud-init writes them) keeps it; the plan's rules, ENI-table routes and
// secondary addresses reach the device through Reapply of the applied connection, the profile on
// disk stays as written, and after the user re-activates the profile the next pass puts the
// routing back.
func TestLabUserProfileGetsRoutingThroughItsAppliedConnection(t *testing.T) {
	n := newNMLabWithUserProfile(t, "cloud-init ens6", "ipv4.routing-rules", "priority 200 from 192.0.2.10 table 200")
	n.userActivate("cloud-init ens6")
	before, err := os.ReadFile(n.keyfile("cloud-init ens6"))
	n.must(err)
	n.waitFor("ens6 leased 10.99.1.10", n.hasAddr("ens6", "10.99.1.10/24"))

	_, p6 := labPlans(t, n.h)
	plan := core.Plan{Interfaces: []core.InterfacePlan{p6}}
	links := []core.Link{{Name: "ens6", Index: p6.Index, MAC: p6.MAC}}
	deleted := watchDeletedAddrs(t, n.l)
	ch := n.apply(plan, links)
	if !slices.Equal(ch.Written, []string{AppliedName("ens6")}) || ch.Reloads != 1 {
		t.Errorf("apply: %+v; want the applied connection of ens6 and 1 Reapply", ch)
	}
	n.waitFor("10.99.1.20 on ens6", n.hasAddr("ens6", "10.99.1.20/32"))
	for _, want := range []string{"200 from 192.0.2.10/32 lookup 200", "10001 from 10.99.1.10/32 lookup 10001", "10001 from 10.99.1.20/32 lookup 10001"} {
		n.waitFor("rule "+want, func() (bool, error) { return slices.Contains(n.rules(), want), nil })
	}
	n.must(n.ping("10.99.1.20"))
	barrier(t, n, deleted)
	if got := deleted(); slices.Contains(got, "10.99.1.10") {
		t.Errorf("the DHCP address was deleted by the Reapply (deleted: %v)", got)
	}
	if after, err := os.ReadFile(n.keyfile("cloud-init ens6")); err != nil || string(after) != string(before) {
		t.Errorf("the user's profile on disk changed (%v):\n%s\nwas:\n%s", err, after, before)
	}
	if out := n.nmcli("-g", "NAME", "connection"); strings.Contains(out, "ec2-net-utils-ens6") {
		t.Errorf("the agent made a profile of its own for an ENI that runs the user's:\n%s", out)
	}
	if ch := n.apply(plan, links); ch.Changed() {
		t.Errorf("second apply changed something: %+v", ch)
	}

	n.userActivate("cloud-init ens6") // the profile as written: our routing is gone
	n.waitFor("rule from 10.99.1.20 gone after re-activation", func() (bool, error) {
		return !slices.Contains(n.rules(), "10001 from 10.99.1.20/32 lookup 10001"), nil
	})
	if ch := n.apply(plan, links); ch.Reloads != 1 {
		t.Errorf("apply after re-activation: %+v; want 1 Reapply", ch)
	}
	n.waitFor("rule from 10.99.1.20 back", func() (bool, error) {
		return slices.Contains(n.rules(), "10001 from 10.99.1.20/32 lookup 10001"), nil
	})

	n.tagSkip("cloud-init ens6")
	n.userActivate("cloud-init ens6")
	if ch := n.apply(plan, links); ch.Changed() {
		t.Errorf("apply on a profile tagged %s changed something: %+v", TagSkip, ch)
	}
	n.checkReloads()
}

// TestLabPersistMovesProfilesBetweenMemoryAndDisk: persist = true writes the agent's profile to
// /etc; switching it off again moves it back to memory, with no reload either way.
func TestLabPersistMovesProfilesBetweenMemoryAndDisk(t *testing.T) {
	n := newNMLab(t, true,
		lab.ENISpec{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", Attached: true},
		lab.ENISpec{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1, Attached: true})
	n.waitFor("ens6 leased", n.hasAddr("ens6", "10.99.1.10/24"))
	_, p6 := labPlans(t, n.h)
	p6.Addresses, p6.Rules = nil, p6.Rules[:1]
	plan := core.Plan{Interfaces: []core.InterfacePlan{p6}}
	links := []core.Link{{Name: "ens6", Index: p6.Index, MAC: p6.MAC}}
	onDisk := filepath.Join(n.l.EtcUpperDir(), "NetworkManager", "system-connections", "ec2-net-utils-ens6.nmconnection")
	inMemory := n.l.InstancePath("/run/NetworkManager/system-connections/ec2-net-utils-ens6.nmconnection")
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	n.apply(plan, links)
	if !exists(onDisk) || exists(inMemory) {
		t.Errorf("persist = true: on disk %v, in memory %v; want on disk only", exists(onDisk), exists(inMemory))
	}
	n.b = New(Options{Bus: n.conn, Persist: false, Logger: testLogger(t)})
	ch := n.apply(plan, links)
	if !slices.Equal(ch.Written, []string{"ec2-net-utils-ens6"}) || ch.Reloads != 0 {
		t.Errorf("switch to memory: %+v; want the profile rewritten, no reload", ch)
	}
	if exists(onDisk) || !exists(inMemory) {
		t.Errorf("persist = false: on disk %v, in memory %v; want in memory only", exists(onDisk), exists(inMemory))
	}
	n.checkReloads()
}

// TestLabDropInKeepsNetworkManagerFromMakingWiredConnections: with the packaged conf.d drop-in,
// NM makes no "Wired connection N" for an ENI, even with the base profile gone and NM's own
// default (no no-auto-default) in NetworkManager.conf.
func TestLabDropInKeepsNetworkManagerFromMakingWiredConnections(t *testing.T) {
	lab.RequireRoot(t)
	for _, withDropIn := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop-in=%v", withDropIn), func(t *testing.T) {
			l, err := lab.New(context.Background(), lab.Options{Name: labPrefix, Logf: t.Logf,
				ENIs: []lab.ENISpec{{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", Attached: true}}})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			conf := "[main]\nplugins=keyfile\ndns=none\nrc-manager=unmanaged\nhostname-mode=none\nauth-polkit=false\n\n" +
				"[keyfile]\nunmanaged-devices=except:interface-name:ens*\n"
			if err := l.WriteInstanceFile("/etc/NetworkManager/NetworkManager.conf", conf, 0o644); err != nil {
				t.Fatal(err)
			}
			if withDropIn {
				b, err := os.ReadFile("../../packaging/NetworkManager/conf.d/80-ec2-net-utils.conf")
				if err != nil {
					t.Fatal(err)
				}
				adapted := strings.Replace(string(b), "driver:ena,driver:ixgbevf,driver:vif", "driver:veth", 1)
				if err := l.WriteInstanceFile("/etc/NetworkManager/conf.d/80-ec2-net-utils.conf", adapted, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.StartManager(lab.ManagerNetworkManager); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond) // NM makes its default profile within ms of managing the device
			out, err := l.Command(context.Background(), "nmcli", "-g", "NAME", "connection").CombinedOutput()
			if err != nil {
				t.Fatalf("nmcli: %v\n%s", err, out)
			}
			if made := strings.Contains(string(out), "Wired connection"); made == withDropIn {
				t.Errorf("profiles with drop-in=%v:\n%s", withDropIn, out)
			}
		})
	}
}

func rule(prio int, src string, table int) *netlink.Rule {
	r := netlink.NewRule()
	r.Priority, r.Table = prio, table
	_, r.Src, _ = net.ParseCIDR(src)
	return r
}

// labPlans builds what the planner would for the lab's two ENIs (§2.1 numbering).
func labPlans(t *testing.T, h *netlink.Handle) (p5, p6 core.InterfacePlan) {
	t.Helper()
	index := func(name string) int {
		link, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return link.Attrs().Index
	}
	pfx := netip.MustParsePrefix
	p5 = core.InterfacePlan{
		Name: "ens5", Index: index("ens5"), MAC: "02:00:00:00:05:05", InterfaceID: "eni-00000000000000000",
		Primary: true, Table: 10000, Priority: 10000, Metric: 512, MainDefaultRoute: true, IPv4: true,
		PrimaryIPv4: netip.MustParseAddr("10.99.0.10"), SubnetIPv4: pfx("10.99.0.0/24"),
		Addresses: []netip.Prefix{pfx("10.99.0.20/32")},
		Routes: []core.Route{
			{Table: 10000, Destination: pfx("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.99.0.1")},
			{Table: 10000, Destination: pfx("10.99.0.0/24")},
		},
	}
	p6 = core.InterfacePlan{
		Name: "ens6", Index: index("ens6"), MAC: "02:00:00:00:06:06", InterfaceID: "eni-00000000000000001",
		DeviceNumber: 1, Table: 10001, Priority: 10001, Metric: 513, MainDefaultRoute: true, IPv4: true,
		PrimaryIPv4: netip.MustParseAddr("10.99.1.10"), SubnetIPv4: pfx("10.99.1.0/24"),
		Rules: []core.Rule{
			{Family: core.IPv4, From: pfx("10.99.1.10/32"), Table: 10001, Priority: 10001},
			{Family: core.IPv4, From: pfx("10.99.1.20/32"), Table: 10001, Priority: 10001},
		},
		Addresses: []netip.Prefix{pfx("10.99.1.20/32")},
		Routes: []core.Route{
			{Table: 10001, Destination: pfx("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.99.1.1")},
			{Table: 10001, Destination: pfx("10.99.1.0/24")},
		},
	}
	return p5, p6
}

// watchDeletedAddrs records every IPv4 address deleted in the instance from now on.
func watchDeletedAddrs(t *testing.T, l *lab.Lab) func() []string {
	t.Helper()
	w, err := l.WatchDeletedAddrs()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w.IPs
}

// barrier waits until the address watcher has seen a deletion made after everything before it:
// netlink events arrive in order, so any deletion NM made earlier has been seen too.
func barrier(t *testing.T, n *nmLab, deleted func() []string) {
	t.Helper()
	lo, err := n.h.LinkByName("lo")
	n.must(err)
	marker, _ := netlink.ParseAddr("192.0.2.99/32")
	n.must(n.h.AddrAdd(lo, marker))
	n.must(n.h.AddrDel(lo, marker))
	n.waitFor("address events caught up", func() (bool, error) { return slices.Contains(deleted(), "192.0.2.99"), nil })
}

// mainRoutes lists the main table's IPv4 routes through ENIs (ens*) as "dst dev metric", sorted.
func mainRoutes(h *netlink.Handle) ([]string, error) {
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range routes {
		link, err := h.LinkByIndex(r.LinkIndex)
		if err != nil || !strings.HasPrefix(link.Attrs().Name, "ens") {
			continue
		}
		dst := "default"
		if r.Dst != nil && r.Dst.String() != "0.0.0.0/0" {
			dst = r.Dst.String()
		}
		out = append(out, fmt.Sprintf("%s %s %d", dst, link.Attrs().Name, r.Priority))
	}
	slices.Sort(out)
	return out, nil
}

// TestLabBaseStillWaitingForDHCPTakesThePlanByReapply: an ENI hot-attached while the VPC's DHCP
// server does not answer yet is found by the agent with the base profile's activation still in its
// IP configuration. The plan goes onto that activation by Reapply, and when the lease comes the ENI
// is routed with the plan's metric, without a second activation.
func TestLabBaseStillWaitingForDHCPTakesThePlanByReapply(t *testing.T) {
	n := newNMLab(t, false,
		lab.ENISpec{Slot: 0, Name: "ens5", MAC: "02:00:00:00:05:05", PrivateIPs: []string{"10.99.0.10", "10.99.0.20"}, Attached: true},
		lab.ENISpec{Slot: 1, Name: "ens6", MAC: "02:00:00:00:06:06", DeviceNumber: 1,
			PrivateIPs: []string{"10.99.1.10", "10.99.1.20"}})
	n.waitFor("ens5 leased 10.99.0.10 by the base profile", n.hasAddr("ens5", "10.99.0.10/24"))
	n.must(n.l.BlockDHCP(1, true))
	t.Cleanup(func() { _ = n.l.BlockDHCP(1, false) })
	n.must(n.l.Attach("ens6"))
	n.waitFor("ens6 waiting for DHCP with the base profile", func() (bool, error) {
		d, err := dbusNM{n.conn}.Device(context.Background(), "ens6")
		return err == nil && d.State == gonm.NmDeviceStateIpConfig, nil
	})
	p5, p6 := labPlans(t, n.h)
	plan := core.Plan{Interfaces: []core.InterfacePlan{p5, p6}}
	links := []core.Link{{Name: "ens5", Index: p5.Index, MAC: p5.MAC}, {Name: "ens6", Index: p6.Index, MAC: p6.MAC}}
	ch := n.apply(plan, links)
	want := []string{"applied:ens5", "ec2-net-utils-ens5", "applied:ens6", "ec2-net-utils-ens6"}
	if !slices.Equal(ch.Written, want) || ch.Reloads != 2 {
		t.Errorf("apply: wrote %v with %d reloads; want %v and 2 (one Reapply each)", ch.Written, ch.Reloads, want)
	}

	n.must(n.l.BlockDHCP(1, false))
	n.waitFor("ens6 leased 10.99.1.10", n.hasAddr("ens6", "10.99.1.10/24"))
	n.waitFor("ens6's rules", func() (bool, error) {
		return slices.Contains(n.rules(), "10001 from 10.99.1.20/32 lookup 10001"), nil
	})
	wantMain := []string{"10.99.0.0/24 ens5 512", "10.99.1.0/24 ens6 513", "default ens5 512", "default ens6 513"}
	n.waitFor("main holds ens6's routes with its metric", func() (bool, error) {
		got, err := mainRoutes(n.h)
		return slices.Equal(got, wantMain), err
	})
	if got := n.nmcli("-g", "GENERAL.CONNECTION", "device", "show", "ens6"); strings.TrimSpace(got) != "ec2-net-utils-default" {
		t.Errorf("ens6 runs %q, want the base profile's activation kept", got)
	}
	n.waitFor("ping from 10.99.1.20", func() (bool, error) { return n.ping("10.99.1.20") == nil, nil })
	if ch := n.apply(plan, links); ch.Changed() {
		t.Errorf("apply after the lease changed %+v", ch)
	}
	n.checkReloads()
}
