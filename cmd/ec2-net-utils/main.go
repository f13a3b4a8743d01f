// Command ec2-net-utils configures EC2 Elastic Network Interfaces through the host's network
// manager: per-ENI route tables and source rules, secondary addresses and delegated prefixes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/ec2-net-utils/ec2-net-utils/conf"
)

// version is set at link time (-X main.version=...).
var version = "dev"

// Exit codes: 2 means the user must fix something (config, flags); 1 is any other failure.
const (
	exitFailure = 1
	exitUsage   = 2
)

// globals are the flags every command shares.
type globals struct {
	configPath   string
	imdsEndpoint string
	logLevel     string
	backend      string
	ifdownDir    string
	stateFile    string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if errors.As(err, new(notOK)) {
		return exitNotOK
	}
	fmt.Fprintf(stderr, "ec2-net-utils: %v\n", err)
	var ue usageError
	if conf.IsConfigError(err) || errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

// usageError marks errors the user fixes by changing how the command is called.
type usageError struct{ error }

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{ifdownDir: ifdownDir, stateFile: stateFile}
	root := &cobra.Command{
		Use:   "ec2-net-utils",
		Short: "Configure EC2 network interfaces through the host's network manager",
		Long: `ec2-net-utils makes every Elastic Network Interface of an EC2 instance work as soon as it
is attached: traffic leaves by the ENI that owns its source address, secondary IPv4 addresses and
delegated prefixes are usable, and detached ENIs leave no trace. It reads the instance metadata
service (IMDS), plans the desired state and hands it to systemd-networkd, NetworkManager or
ifcfg/dhclient, whichever the distribution runs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "configuration file (default "+conf.DefaultPath+")")
	pf.StringVar(&g.imdsEndpoint, "imds-endpoint", "", "IMDS endpoint URL, overriding the configuration (e.g. http://127.0.0.1:8080 for a fake)")
	pf.StringVar(&g.logLevel, "log-level", "", "log level: trace, debug, info, warn, error (overrides log_level)")
	pf.StringVar(&g.backend, "backend", "", "backend: auto, networkd, networkmanager, ifcfg (overrides backend)")
	// Where the daemon publishes its state and status reads it; for tests and the lab.
	pf.StringVar(&g.stateFile, "state-file", stateFile, "daemon state file")
	if err := pf.MarkHidden("state-file"); err != nil {
		panic(err)
	}
	// Shell completion (the `completion` command cobra adds) offers the accepted values.
	for flag, values := range map[string][]string{
		"backend":   {conf.BackendAuto, conf.BackendNetworkd, conf.BackendNetworkManager, conf.BackendIfcfg},
		"log-level": {"trace", "debug", "info", "warn", "error"},
	} {
		if err := root.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)); err != nil {
			panic(err) // a flag name typo: every test would hit it
		}
	}

	root.AddCommand(
		newPlanCommand(g),
		newApplyCommand(g),
		newDaemonCommand(g),
		newHostnameCommand(g),
		newStatusCommand(g),
		newVersionCommand(),
	)
	usageErrorsExitTwo(root)
	return root
}

// usageErrorsExitTwo makes every wrong call — an unknown command, an extra argument — a
// usageError, so it exits 2 like a bad flag or a bad configuration. cobra reports these as plain
// errors. The root needs a Run for its own Args to be consulted: without one, cobra either checks
// for unknown commands itself (a plain error) or, given Args, shows help and exits 0.
func usageErrorsExitTwo(root *cobra.Command) {
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q; run %q for the list", args[0], cmd.Name()+" --help")
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	root.InitDefaultCompletionCmd() // so that its subcommands are wrapped too
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if check := c.Args; check != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// loadConfig reads the configuration and applies the command-line overrides, which win over the
// file and the environment.
func (g *globals) loadConfig() (conf.Config, error) {
	path, explicit := conf.DefaultPath, false
	if g.configPath != "" {
		path, explicit = g.configPath, true
	}
	cfg, err := conf.Load(path, explicit, os.Environ())
	if err != nil {
		return conf.Config{}, err
	}
	if g.imdsEndpoint != "" {
		cfg.IMDS.Endpoint = g.imdsEndpoint
	}
	if g.logLevel != "" {
		cfg.LogLevel = g.logLevel
	}
	if g.backend != "" {
		cfg.Backend = g.backend
	}
	down, err := ifdownExcludes(g.ifdownDir)
	if err != nil {
		return conf.Config{}, err
	}
	cfg.Interfaces.Exclude = append(cfg.Interfaces.Exclude, down...)
	if err := cfg.Validate(); err != nil {
		return conf.Config{}, usageError{fmt.Errorf("command line: %w", err)}
	}
	return cfg, nil
}

// newLogger logs to stderr, which journald captures with the unit's identity.
func newLogger(level string, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "ec2-net-utils",
		Level:  hclog.LevelFromString(level),
		Output: w,
	})
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "ec2-net-utils %s\n", version)
			return err
		},
	}
}

// noArgs replaces cobra.NoArgs, whose message calls an extra argument an "unknown command".
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
