package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/imagearchive"
	"github.com/warrenhq/warren/runtime/ociimage"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage images kept by the cluster (air-gapped sites need no registry)",
	}
	cmd.AddCommand(newImageLoadCmd(g), newImageLsCmd(g), newImageRmCmd(g), newImagePackCmd(g))
	return cmd
}

func newImageLoadCmd(g *globals) *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "load -i FILE.tar",
		Short: "Load an image archive (docker save or OCI) into the cluster",
		Long: `Load an image archive into the cluster. Every manager keeps a copy by digest (the others
fetch it from the one that received it, in the background), so losing a manager loses no
image; a node that needs the image and does not have it fetches it from a manager over
mTLS, once, so no registry is needed. A multi-platform archive (image pack --platform)
places tasks only on nodes of its platforms, and each node imports only its own.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if input == "" {
				return fmt.Errorf("--input/-i is required: the archive to load")
			}
			f, err := os.Open(input)
			if err != nil {
				return err
			}
			defer f.Close()
			names, err := archiveNames(f)
			if err != nil {
				return fmt.Errorf("%s: %w", input, err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, name := range names {
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return err
				}
				ctx, cancel := ctxTimeout(10 * time.Minute)
				img, err := c.UploadImage(ctx, name, f)
				cancel()
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "Loaded image: %s (%s, %s)\n", img.Name, shortDigest(img.Digest), platformList(img.Platforms))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "archive to load")
	return cmd
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// archiveNames reads the image names an archive declares: OCI index
// annotations, or docker's manifest.json RepoTags.
func archiveNames(r io.Reader) ([]string, error) {
	imgs, err := imagearchive.Read(r)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, im := range imgs {
		names = appendUnique(names, im.Name)
	}
	return names, nil
}

func appendUnique(s []string, v string) []string {
	v = ociimage.NormalizeRef(v)
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func newImageLsCmd(g *globals) *cobra.Command {
	var managers []string
	list := func(c *client.Client, ctx context.Context) ([]api.Image, error) {
		imgs, err := c.Images(ctx)
		if err != nil {
			return nil, err
		}
		// Holders count against the managers raft has now: one that was
		// removed no longer keeps anything for the cluster.
		if info, err := c.Info(ctx); err == nil {
			for _, m := range info.Managers {
				managers = append(managers, m.NodeID)
			}
		}
		return imgs, nil
	}
	return listCmd(g, "List images loaded into the cluster", list, func(tw *tabwriter.Writer, imgs []api.Image) {
		row(tw, "NAME", "DIGEST", "SIZE", "PLATFORMS", "MANAGERS")
		for _, i := range imgs {
			row(tw, i.Name, shortDigest(i.Digest), fmt.Sprintf("%.1f MB", float64(i.Size)/1e6), platformList(i.Platforms), holderCount(i.Holders, managers))
		}
	})
}

// holderCount is "N/M": how many of the M managers hold the archive.
func holderCount(holders, managers []string) string {
	if len(managers) == 0 {
		return fmt.Sprintf("%d", len(holders))
	}
	n := 0
	for _, h := range holders {
		if slices.Contains(managers, h) {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(managers))
}

func platformList(ps []api.Platform) string {
	if len(ps) == 0 {
		return "-"
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

func newImageRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm IMAGE...",
		Aliases: []string{"remove"},
		Short:   "Remove images from the cluster's store",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.forEach(args, 30*time.Second, func(ctx context.Context, c *client.Client, a string) (string, error) {
				_, err := c.RemoveImage(ctx, ociimage.NormalizeRef(a))
				return a, err
			})
		},
	}
}

// ociimagePack packs a binary with default settings (tests).
func ociimagePack(w io.Writer, ref string, bin []byte) error {
	return ociimage.PackBinary(w, ref, bin, ociimage.ImageConfig{})
}
