package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/client"
)

func newServiceLogsCmd(g *globals) *cobra.Command {
	var o client.LogOptions
	var tail string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] SERVICE",
		Short: "Show the logs of a service's tasks, from whichever nodes run them",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			switch n, err := strconv.Atoi(tail); {
			case tail == "all":
				o.Tail = 0
			case err != nil || n < 0:
				return fmt.Errorf("--tail %q: must be all or a number of lines", tail)
			case n == 0:
				o.Tail = -1 // the wire's "none"; 0 there means all
			default:
				o.Tail = n
			}
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
	cmd.Flags().StringVarP(&tail, "tail", "n", "all", "show only the last N lines of each task (all, or a number; 0 = none, as in Docker)")
	cmd.Flags().BoolVarP(&o.Timestamps, "timestamps", "t", false, "show when each line was written")
	return cmd
}
