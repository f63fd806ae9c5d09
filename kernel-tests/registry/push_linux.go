package registrytest

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Ref is repo:tag (or repo@digest) under this registry.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

func (r *Registry) options(ctx context.Context) []remote.Option {
	return r.optionsAs(ctx, r.User, r.Password)
}

func (r *Registry) optionsAs(ctx context.Context, user, password string) []remote.Option {
	o := []remote.Option{remote.WithContext(ctx), remote.WithTransport(r.Transport())}
	if !r.o.NoAuth {
		o = append(o, remote.WithAuth(&authn.Basic{Username: user, Password: password}))
	}
	return o
}

func (r *Registry) parse(repoTag string) (name.Reference, error) {
	var opts []name.Option
	if r.o.Plain {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(r.Ref(repoTag), opts...)
}

// LoadArchive reads the first image of a docker-save/OCI archive (what
// `warren image pack` writes) and, when arch is not empty, rewrites its
// config to that architecture: the layers stay the same, so an "arm64"
// image of the demo server still runs here, and only the platform a node
// reports decides where it may go.
func LoadArchive(path, arch, variant string) (v1.Image, error) {
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return nil, fmt.Errorf("load archive %s: %w", path, err)
	}
	if arch == "" {
		return img, nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", path, err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.Variant = arch, variant
	return mutate.ConfigFile(img, cf)
}

// Push uploads the first image of archive as repoTag and returns the
// manifest digest.
func (r *Registry) Push(archive, repoTag string) (string, error) {
	img, err := LoadArchive(archive, "", "")
	if err != nil {
		return "", err
	}
	return r.PushImage(img, repoTag)
}

// PushImage uploads img as repoTag and returns its manifest digest.
func (r *Registry) PushImage(img v1.Image, repoTag string) (string, error) {
	ref, err := r.parse(repoTag)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, r.options(ctx)...); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// PlatformImage is one entry of an index pushed by PushIndex.
type PlatformImage struct {
	Image    v1.Image
	Platform v1.Platform
}

// PushIndex uploads an OCI image index of the given per-platform images as
// repoTag and returns the index digest.
func (r *Registry) PushIndex(repoTag string, imgs []PlatformImage) (string, error) {
	ref, err := r.parse(repoTag)
	if err != nil {
		return "", err
	}
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, pi := range imgs {
		p := pi.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: pi.Image, Descriptor: v1.Descriptor{Platform: &p}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.WriteIndex(ref, idx, r.options(ctx)...); err != nil {
		return "", fmt.Errorf("push index %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// Head returns the digest repoTag points at now.
func (r *Registry) Head(repoTag string) (string, error) {
	return r.HeadAs(r.User, r.Password, repoTag)
}

// HeadAs is Head with other credentials.
func (r *Registry) HeadAs(user, password, repoTag string) (string, error) {
	ref, err := r.parse(repoTag)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := remote.Head(ref, r.optionsAs(ctx, user, password)...)
	if err != nil {
		return "", fmt.Errorf("head %s: %w", ref, err)
	}
	return d.Digest.String(), nil
}

// WithRandomLayer is img with one more layer of size random bytes: a
// download that none of the node's cached blobs can shorten, and that
// compression cannot shrink (for a pull slow enough to interrupt).
func WithRandomLayer(img v1.Image, size int64) (v1.Image, error) {
	l, err := random.Layer(size, types.DockerLayer)
	if err != nil {
		return nil, fmt.Errorf("random layer: %w", err)
	}
	return mutate.AppendLayers(img, l)
}
