package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/runtime/ociimage"
)

func newImagePackCmd(g *globals) *cobra.Command {
	var name, out, workdir, user string
	var binaries, rootfses, plats, env, ports, entrypoint, args []string
	cmd := &cobra.Command{
		Use:   "pack (--binary FILE | --rootfs ROOTFS.tar)... [--platform OS/ARCH[/VARIANT]]... --name REF -o FILE.tar",
		Short: "Pack a static binary or a root filesystem into an OCI image archive (no docker, no registry)",
		Long: `Pack a static binary or a root filesystem tarball into an OCI image archive for
'warren image load'.

--platform names the platform an input is built for (default: this machine's). Give one
--platform per input, in the same order as the inputs, to pack a multi-platform image: the
archive then holds an OCI image index with one manifest per platform, as
'docker buildx build --platform linux/amd64,linux/arm64' makes. Once loaded, the scheduler
places its tasks only on nodes of those platforms, and each node imports and runs only its
own platform's content. All inputs are of one kind (all --binary or all --rootfs) and share
the other settings (--entrypoint, --env, ...). A multi-platform archive has no docker
manifest.json (that format cannot name several platforms); docker loads it with its
containerd image store.`,
		Example: `  warren image pack --binary ./server --name myapp:v1 -o myapp.tar && warren image load -i myapp.tar
  mmdebstrap --variant=apt --include=postgresql bookworm pg.tar
  warren image pack --rootfs pg.tar --name postgres:15 --user postgres --entrypoint /usr/lib/postgresql/15/bin/postgres -o pg-image.tar
  warren image pack --name myapp:v1 -o multi.tar \
    --platform linux/amd64 --binary ./server-amd64 --platform linux/arm64 --binary ./server-arm64`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if name == "" || out == "" {
				return fmt.Errorf("--name and --output are required")
			}
			inputs, err := packInputs(binaries, rootfses, plats)
			if err != nil {
				return err
			}
			cfg := ociimage.ImageConfig{Env: env, ExposedPorts: ports, Entrypoint: entrypoint, Cmd: args, WorkingDir: workdir, User: user}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if err = writePack(f, name, inputs, cfg); err != nil {
				f.Close()
				os.Remove(out)
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().StringArrayVar(&binaries, "binary", nil, "static executable to run as /app (once per --platform)")
	cmd.Flags().StringArrayVar(&rootfses, "rootfs", nil, "root filesystem tarball (e.g. from mmdebstrap) to use as the image's one layer (once per --platform)")
	cmd.Flags().StringArrayVar(&plats, "platform", nil, "platform of the input in the same position, os/arch[/variant] (repeat, or separate with commas, for a multi-platform archive)")
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

// packInput is one input file and the platform it is for (nil: this
// machine's, single-platform archives only).
type packInput struct {
	path     string
	binary   bool
	platform *ocispec.Platform
}

// packInputs pairs the inputs with the platforms by position. Cobra keeps
// the order within one flag but not across flags, so the inputs must all
// be of one kind for the pairing to mean what the command line shows.
func packInputs(binaries, rootfses, plats []string) ([]packInput, error) {
	if (len(binaries) == 0) == (len(rootfses) == 0) {
		return nil, fmt.Errorf("give one of --binary (a static executable) or --rootfs (a root filesystem tarball), once per platform; not both kinds")
	}
	files, binary := rootfses, false
	if len(binaries) > 0 {
		files, binary = binaries, true
	}
	var ps []ocispec.Platform
	for _, arg := range plats {
		for _, s := range strings.Split(arg, ",") {
			s = strings.TrimSpace(s)
			if strings.Count(s, "/") < 1 {
				return nil, fmt.Errorf("--platform %q: want os/arch[/variant], e.g. linux/arm64", s)
			}
			p, err := platforms.Parse(s)
			if err != nil {
				return nil, fmt.Errorf("--platform %q: %w", s, err)
			}
			for _, q := range ps {
				if platforms.Format(q) == platforms.Format(p) {
					return nil, fmt.Errorf("--platform %s is given twice", platforms.Format(p))
				}
			}
			ps = append(ps, p)
		}
	}
	switch {
	case len(ps) == 0 && len(files) > 1:
		return nil, fmt.Errorf("%d inputs without --platform: name the platform of each input (--platform os/arch, in the same order)", len(files))
	case len(ps) > 0 && len(ps) != len(files):
		return nil, fmt.Errorf("%d --platform for %d inputs: give one platform per input, in the same order", len(ps), len(files))
	}
	out := make([]packInput, len(files))
	for i, f := range files {
		out[i] = packInput{path: f, binary: binary}
		if len(ps) > 0 {
			out[i].platform = &ps[i]
		}
	}
	return out, nil
}

// writePack writes one platform as a plain image (with a docker
// manifest.json) and several as an index.
func writePack(w io.Writer, name string, inputs []packInput, cfg ociimage.ImageConfig) error {
	if len(inputs) == 1 {
		in := inputs[0]
		if p := in.platform; p != nil {
			cfg.OS, cfg.Arch, cfg.Variant = p.OS, p.Architecture, p.Variant
		}
		if in.binary {
			b, err := os.ReadFile(in.path)
			if err != nil {
				return err
			}
			return ociimage.PackBinary(w, name, b, cfg)
		}
		f, err := os.Open(in.path)
		if err != nil {
			return err
		}
		defer f.Close()
		return ociimage.PackRootfs(w, name, f, cfg)
	}
	ins := make([]ociimage.Input, len(inputs))
	for i, in := range inputs {
		ins[i].Platform = *in.platform
		if in.binary {
			b, err := os.ReadFile(in.path)
			if err != nil {
				return err
			}
			ins[i].Binary = b
			continue
		}
		f, err := os.Open(in.path)
		if err != nil {
			return err
		}
		defer f.Close()
		ins[i].Rootfs = f
	}
	return ociimage.PackIndex(w, name, ins, cfg)
}
