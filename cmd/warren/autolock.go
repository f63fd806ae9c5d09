package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/client"
)

func newClusterUpdateCmd(g *globals) *cobra.Command {
	var autolock bool
	var reg registryClusterFlags
	cmd := &cobra.Command{
		Use:   "update [--autolock=true|false] [--registry-ca FILE] [--registry-mirror HOST=URL] [--insecure-registry HOST]",
		Short: "Change cluster-wide settings (autolock, registries)",
		Long: `With --autolock=true, managers keep their key-encryption key on disk only sealed by an unlock
key, printed here once: a restarted manager serves nothing until 'warren cluster unlock' is given
the key. Keep the key somewhere safe: a cluster whose managers all restart cannot be unlocked without it.

--registry-ca, --registry-mirror and --insecure-registry say how every node pulls images (docs/registry.md):
each flag given replaces that setting; the others are kept.`,
		Example: `  warren cluster update --registry-ca ca.pem --registry-mirror docker.io=https://mirror.site:5000
  warren cluster update --insecure-registry registry.lan:5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("autolock") && !reg.changed(cmd.Flags()) {
				return fmt.Errorf("nothing to update: give --autolock=true|false or a --registry-* / --insecure-registry flag")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if reg.changed(cmd.Flags()) {
				if err := updateRegistry(g, c, cmd.Flags(), &reg); err != nil {
					return err
				}
				if !cmd.Flags().Changed("autolock") {
					return nil
				}
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			res, err := c.UpdateCluster(ctx, client.ClusterUpdate{Autolock: &autolock})
			if err != nil {
				return err
			}
			if res.UnlockKey != "" {
				printUnlockKey(g, res.UnlockKey)
				return nil
			}
			fmt.Fprintf(g.stdout, "autolock: %v\n", autolock)
			return nil
		},
	}
	cmd.Flags().BoolVar(&autolock, "autolock", false, "require the unlock key after a manager restarts")
	addRegistryClusterFlags(cmd.Flags(), &reg)
	return cmd
}

func printUnlockKey(g *globals, key string) {
	fmt.Fprintf(g.stdout, `Autolock is on. A manager that restarts serves nothing until it is unlocked with:

    warren cluster unlock

and this key, which is shown only now (warren cluster unlock-key shows it to an administrator):

    %s
`, key)
}

func newClusterUnlockCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock",
		Short: "Unlock a manager restarted under autolock (reads the unlock key from stdin)",
		Long: `Give this machine's manager (or the one --host names) its unlock key. The key is read from
stdin, so it appears in no process list or shell history.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if f, ok := g.stdin.(*os.File); ok && isTerminal(f) {
				fmt.Fprint(g.stderr, "Unlock key: ")
			}
			line, err := bufio.NewReader(g.stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("read the unlock key from stdin: %w", err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			if err := c.Unlock(ctx, strings.TrimSpace(line)); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "manager unlocked")
			return nil
		},
	}
}

func newClusterUnlockKeyCmd(g *globals) *cobra.Command {
	var rotate, quiet bool
	cmd := &cobra.Command{
		Use:   "unlock-key [--rotate]",
		Short: "Show the autolock unlock key; --rotate replaces it on every manager",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			var k *client.UnlockKeyInfo
			if rotate {
				k, err = c.RotateUnlockKey(ctx)
			} else {
				k, err = c.UnlockKey(ctx)
			}
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(g.stdout, k.UnlockKey)
				return nil
			}
			printUnlockKey(g, k.UnlockKey)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "make a new unlock key (the old one stops working once every manager re-sealed its key)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the key")
	return cmd
}
