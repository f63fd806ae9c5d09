package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
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
		Long: `Load an image archive into the cluster. Managers keep it by digest; a node that needs the
image and does not have it fetches it from a manager over mTLS, so no registry is needed.`,
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
				fmt.Fprintf(g.stdout, "Loaded image: %s (%s)\n", img.Name, shortDigest(img.Digest))
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
	tr := tar.NewReader(r)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "index.json":
			var idx struct {
				Manifests []struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"manifests"`
			}
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				return nil, fmt.Errorf("index.json: %w", err)
			}
			for _, m := range idx.Manifests {
				if n := m.Annotations[ociimage.AnnotationImageName]; n != "" {
					names = appendUnique(names, n)
				} else if n := m.Annotations["org.opencontainers.image.ref.name"]; strings.ContainsAny(n, "/:") {
					names = appendUnique(names, n)
				}
			}
		case "manifest.json":
			var ms []struct{ RepoTags []string }
			if err := json.NewDecoder(tr).Decode(&ms); err != nil {
				return nil, fmt.Errorf("manifest.json: %w", err)
			}
			for _, m := range ms {
				for _, t := range m.RepoTags {
					names = appendUnique(names, t)
				}
			}
		}
	}
	if len(names) == 0 {
		return nil, errors.New("the archive names no image (no index.json annotation or manifest.json RepoTags)")
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
	return listCmd(g, "List images loaded into the cluster", (*client.Client).Images, func(tw *tabwriter.Writer, imgs []api.Image) {
		row(tw, "NAME", "DIGEST", "SIZE", "MANAGERS")
		for _, i := range imgs {
			row(tw, i.Name, shortDigest(i.Digest), fmt.Sprintf("%.1f MB", float64(i.Size)/1e6), len(i.Holders))
		}
	})
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

func newImagePackCmd(g *globals) *cobra.Command {
	var binary, rootfs, name, out, workdir, user string
	var env, ports, entrypoint, args []string
	cmd := &cobra.Command{
		Use:   "pack (--binary FILE | --rootfs ROOTFS.tar) --name REF -o FILE.tar",
		Short: "Pack a static binary or a root filesystem into an OCI image archive (no docker, no registry)",
		Example: `  warren image pack --binary ./server --name myapp:v1 -o myapp.tar && warren image load -i myapp.tar
  mmdebstrap --variant=apt --include=postgresql bookworm pg.tar
  warren image pack --rootfs pg.tar --name postgres:15 --user postgres --entrypoint /usr/lib/postgresql/15/bin/postgres -o pg-image.tar`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if (binary == "") == (rootfs == "") {
				return fmt.Errorf("give one of --binary (a static executable) or --rootfs (a root filesystem tarball)")
			}
			if name == "" || out == "" {
				return fmt.Errorf("--name and --output are required")
			}
			cfg := ociimage.ImageConfig{Env: env, ExposedPorts: ports, Entrypoint: entrypoint, Cmd: args, WorkingDir: workdir, User: user}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if binary != "" {
				var b []byte
				if b, err = os.ReadFile(binary); err == nil {
					err = ociimage.PackBinary(f, name, b, cfg)
				}
			} else {
				var in *os.File
				if in, err = os.Open(rootfs); err == nil {
					err = ociimage.PackRootfs(f, name, in, cfg)
					in.Close()
				}
			}
			if err != nil {
				f.Close()
				os.Remove(out)
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVar(&binary, "binary", "", "static executable to run as /app")
	cmd.Flags().StringVar(&rootfs, "rootfs", "", "root filesystem tarball (e.g. from mmdebstrap) to use as the image's one layer")
	cmd.Flags().StringVar(&name, "name", "", "image name, e.g. myapp:v1")
	cmd.Flags().StringVarP(&out, "output", "o", "", "archive to write")
	cmd.Flags().StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE baked into the image")
	cmd.Flags().StringArrayVar(&ports, "expose", nil, "exposed port, e.g. 80/tcp")
	cmd.Flags().StringArrayVar(&entrypoint, "entrypoint", nil, "entrypoint; repeat for each word (default /app with --binary)")
	cmd.Flags().StringArrayVar(&args, "cmd", nil, "default arguments; repeat for each word")
	cmd.Flags().StringVar(&workdir, "workdir", "", "working directory")
	cmd.Flags().StringVar(&user, "user", "", "user[:group] the image runs as")
	return cmd
}

// ociimagePack packs a binary with default settings (tests).
func ociimagePack(w io.Writer, ref string, bin []byte) error {
	return ociimage.PackBinary(w, ref, bin, ociimage.ImageConfig{})
}
