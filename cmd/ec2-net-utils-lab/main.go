// Command ec2-net-utils-lab runs ec2-net-utils in a simulated VPC built from network namespaces
// (see lab/): `demo` shows what the agent does, `bench` measures it. Root only. Nothing runs in
// the host's network namespace; the agent's 169.254.169.254 is the lab's fake IMDS.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: ec2-net-utils-lab demo|bench [flags]   (run with -h for the flags)")
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	agent := fs.String("agent", "bin/ec2-net-utils", "path of the ec2-net-utils binary to run in the lab")
	backend := fs.String("backend", "networkd", "backend (and network manager) to run: "+backendNames())
	repo := fs.String("repo", ".", "repository checkout (its packaging/ files are installed into the lab)")
	verbose := fs.Bool("v", false, "print the lab's own progress")
	var cmd func(context.Context, options) error
	var o options
	switch args[0] {
	case "demo":
		cmd = demo
	case "bench":
		fs.IntVar(&o.attaches, "attaches", 7, "attach/detach cycles for the attach latency")
		fs.DurationVar(&o.idle, "idle", 30*time.Second, "how long to watch the idle daemon (CPU, RSS)")
		fs.IntVar(&o.deletions, "deletions", 5, "source rules deleted by hand to time their restore")
		fs.IntVar(&o.refreshes, "refreshes", 5, "no-change refreshes to count IMDS requests and reloads over")
		fs.IntVar(&o.enis, "enis", 2, "ENIs attached at boot (over two network cards above 15); one more is hot-attached")
		fs.IntVar(&o.ips, "ips", 2, "private IPv4 addresses per ENI, the primary included")
		fs.IntVar(&o.prefixes, "prefixes", 0, "delegated IPv4 /28 prefixes per ENI")
		cmd = bench
	default:
		usage()
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "ec2-net-utils-lab: needs root: the lab creates network namespaces")
		return 1
	}
	abs, err := filepath.Abs(*agent)
	if err != nil {
		fmt.Fprintf(stderr, "ec2-net-utils-lab: %v\n", err)
		return 1
	}
	if _, err := lookupBackend(*backend); err != nil {
		fmt.Fprintf(stderr, "ec2-net-utils-lab: %v\n", err)
		return 2
	}
	o.agent, o.backend, o.repo, o.out, o.verbose = abs, *backend, *repo, stdout, *verbose
	if err := cmd(ctx, o); err != nil {
		fmt.Fprintf(stderr, "ec2-net-utils-lab %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

type options struct {
	agent, backend, repo string
	out                  io.Writer
	verbose              bool
	quiet                bool // run the agent at log_level info
	attaches, refreshes  int
	deletions            int
	enis, ips, prefixes  int
	idle                 time.Duration
}
