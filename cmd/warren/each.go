package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/client"
)

// forEach calls do for every argument, each with its own timeout, printing
// what do returns as it succeeds and stopping at the first error — the way
// `docker service rm a b c` behaves.
func (g *globals) forEach(args []string, timeout time.Duration, do func(ctx context.Context, c *client.Client, arg string) (string, error)) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	for _, a := range args {
		ctx, cancel := ctxTimeout(timeout)
		line, err := do(ctx, c, a)
		cancel()
		if err != nil {
			return err
		}
		fmt.Fprintln(g.stdout, line)
	}
	return nil
}

// inspect fetches every argument and prints them, as JSON unless -o says
// otherwise (inspect output is for reading by programs first).
func inspect[T any](g *globals, cmd *cobra.Command, args []string, get func(*client.Client, context.Context, string) (*T, error), table func(tw *tabwriter.Writer, items []T)) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	var out []T
	for _, a := range args {
		v, err := get(c, ctx, a)
		if err != nil {
			return err
		}
		out = append(out, *v)
	}
	p := g.printer()
	if !cmd.Flags().Changed("output") {
		p.format = "json"
	}
	return p.object(out, func(tw *tabwriter.Writer) { table(tw, out) })
}

// listCmd is an `ls` command: it fetches the list and prints it as a table,
// or as -o asks.
func listCmd[T any](g *globals, short string, list func(*client.Client, context.Context) ([]T, error), table func(tw *tabwriter.Writer, items []T)) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   short,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			items, err := list(c, ctx)
			if err != nil {
				return err
			}
			return g.printer().object(items, func(tw *tabwriter.Writer) { table(tw, items) })
		},
	}
}
