package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/client"
)

func newServiceLogsCmd(g *globals) *cobra.Command {
	var o client.LogOptions
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] SERVICE",
		Short: "Show the logs of a service's tasks, from whichever nodes run them",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			rc, err := c.ServiceLogs(ctx, args[0], o)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(g.stdout, rc)
			if ctx.Err() != nil || err == context.Canceled {
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep streaming new lines")
	cmd.Flags().IntVarP(&o.Tail, "tail", "n", 0, "show only the last N lines of each task (0 = all)")
	cmd.Flags().BoolVarP(&o.Timestamps, "timestamps", "t", false, "show when each line was written")
	return cmd
}
