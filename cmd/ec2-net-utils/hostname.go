package main

import (
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/ec2-net-utils/ec2-net-utils/internal/hostname"
)

func newHostnameCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "hostname",
		Short: "Set the host name from IMDS local-hostname if the host has none ([hostname] from_imds)",
		Long: `hostname does what amazon-ec2-net-utils 2.7's set-hostname-imds did, when [hostname] from_imds
is on (it is off by default): if /etc/hostname is missing, empty, "localhost" or
"localhost.localdomain", it reads IMDS local-hostname and makes it the static and current host
name through systemd-hostnamed. A name in /etc/hostname always wins. ec2-net-utils-hostname.service
runs it once per boot; the daemon does not, as its sandbox keeps it off the host name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !cfg.Hostname.FromIMDS {
				_, err := fmt.Fprintln(out, "hostname: [hostname] from_imds is off: host name left alone")
				return err
			}
			log := newLogger(cfg.LogLevel, cmd.ErrOrStderr())
			client, err := newIMDSClient(cfg, log)
			if err != nil {
				return err
			}
			conn, err := dbus.ConnectSystemBus()
			if err != nil {
				return fmt.Errorf("hostname: connect to the system bus (systemd-hostnamed): %w", err)
			}
			defer conn.Close()
			res, err := hostname.Apply(cmd.Context(), hostname.StaticFile, client, hostname.Hostnamed{Conn: conn})
			if err != nil {
				return err
			}
			if res.Set == "" {
				_, err = fmt.Fprintf(out, "hostname: left alone: %s\n", res.Reason)
				return err
			}
			log.Info("host name set from IMDS local-hostname", "hostname", res.Set, "why", res.Reason)
			_, err = fmt.Fprintf(out, "hostname: set to %s (%s)\n", res.Set, res.Reason)
			return err
		},
	}
}
