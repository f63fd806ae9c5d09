package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go.uber.org/zap"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
)

// Image archives live under BlobDir/sha256/<hex>; the store only records
// name → digest and which managers hold the blob.

const maxImageName = 255

func validImageName(name string) error {
	if name == "" || len(name) > maxImageName {
		return errorf(http.StatusBadRequest, "image name: must be 1-%d characters", maxImageName)
	}
	if strings.ContainsAny(name, " \t\n\\") || strings.Contains(name, "..") {
		return errorf(http.StatusBadRequest, "image name %q: must not contain spaces, backslashes or '..'", name)
	}
	return nil
}

func (s *Server) blobPath(digest string) (string, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if _, err := hex.DecodeString(hexd); !ok || err != nil || len(hexd) != 64 {
		return "", fmt.Errorf("image digest %q is not sha256:<64 hex>", digest)
	}
	return filepath.Join(s.b.BlobDir(), "sha256", hexd), nil
}

func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request, _ Identity) error {
	name := r.URL.Query().Get("name")
	if err := validImageName(name); err != nil {
		return err
	}
	dir := filepath.Join(s.b.BlobDir(), "sha256")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("image blob dir: %w", err)
	}
	tmp, err := os.CreateTemp(s.b.BlobDir(), "upload-*")
	if err != nil {
		return fmt.Errorf("image upload: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), r.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errorf(http.StatusBadRequest, "image %q: upload interrupted: %v", name, err)
	}
	if size == 0 {
		return errorf(http.StatusBadRequest, "image %q: the archive is empty", name)
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	final, _ := s.blobPath(digest)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("image %q: store blob: %w", name, err)
	}
	img := api.Image{Name: name, Digest: digest, Size: size, Holders: []string{s.b.NodeID()}, CreatedAt: s.cfg.Now()}
	if _, err := s.apply(r.Context(), &store.Batch{PutImages: []api.Image{img}}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, img)
	return nil
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	imgs := v.Images()
	slices.SortFunc(imgs, func(a, b api.Image) int { return strings.Compare(a.Name, b.Name) })
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, nonNil(imgs))
	return nil
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request, _ Identity) error {
	name := r.PathValue("name")
	v := s.b.View()
	img, ok := v.Image(name)
	if !ok {
		return errorf(http.StatusNotFound, "image %q not found", name)
	}
	idx, err := s.apply(r.Context(), &store.Batch{DeleteImages: []string{name}})
	if err != nil {
		return err
	}
	// The blob goes only when no other name points at it. Other managers
	// holding a copy keep it until they are cleaned up; it is inert.
	shared := slices.ContainsFunc(v.Images(), func(o api.Image) bool { return o.Name != name && o.Digest == img.Digest })
	if !shared {
		if p, err := s.blobPath(img.Digest); err == nil {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("remove image blob: " + err.Error())
			}
		}
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: name})
	return nil
}

// downloadImage streams the archive from this manager's blob dir. A manager
// that does not hold it says which managers do.
func (s *Server) downloadImage(w http.ResponseWriter, r *http.Request, _ Identity) error {
	name := r.PathValue("name")
	v := s.b.View()
	img, ok := v.Image(name)
	if !ok {
		return errorf(http.StatusNotFound, "image %q not found", name)
	}
	p, err := s.blobPath(img.Digest)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) && r.Header.Get(headerNoRelay) == "" {
		// Uploads land on the leader; any other manager fetches the blob
		// from a holder the first time a node asks, verifies its digest
		// and keeps it, so it can serve the next node itself.
		if ferr := s.fetchBlob(r.Context(), v, img, p); ferr != nil {
			return errorf(http.StatusBadGateway, "image %q: this manager does not hold the archive and could not fetch it from %s: %v", name, strings.Join(img.Holders, ", "), ferr)
		}
		f, err = os.Open(p)
	}
	if errors.Is(err, os.ErrNotExist) {
		return errorf(http.StatusNotFound, "image %q: this manager does not hold the archive; held by %s", name, strings.Join(img.Holders, ", "))
	}
	if err != nil {
		return fmt.Errorf("image %q: %w", name, err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Length", strconv.FormatInt(img.Size, 10))
	w.Header().Set("Warren-Image-Digest", img.Digest)
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, f)
	return nil
}

// headerNoRelay marks a manager-to-manager blob fetch, which must be served
// from local disk only (no relay loops).
const headerNoRelay = "Warren-No-Relay"

// fetchBlob copies an image archive from a manager that holds it into path,
// verifying its digest, and records this manager as a holder.
func (s *Server) fetchBlob(ctx context.Context, v *store.View, img api.Image, path string) error {
	hc := &http.Client{Transport: s.managerTransport()}
	var lastErr error = errors.New("no holder is a manager with an API address")
	for _, holder := range img.Holders {
		n, ok := v.Node(holder)
		if !ok || holder == s.b.NodeID() || n.Status.Manager == nil || n.Status.Manager.APIAddr == "" {
			continue
		}
		if lastErr = s.fetchBlobFrom(ctx, hc, n.Status.Manager.APIAddr, img, path); lastErr == nil {
			next := img
			next.Holders = append(slices.Clone(img.Holders), s.b.NodeID())
			if _, err := s.apply(ctx, &store.Batch{PutImages: []api.Image{next}}); err != nil {
				s.log.Info("record image holder", zap.String("image", img.Name), zap.Error(err))
			}
			return nil
		}
	}
	return lastErr
}

func (s *Server) fetchBlobFrom(ctx context.Context, hc *http.Client, addr string, img api.Image, path string) error {
	u := url.URL{Scheme: "https", Host: addr, Path: "/v1/image-blobs/" + img.Name}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set(headerNoRelay, "1")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.b.BlobDir(), "fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != img.Digest {
		return fmt.Errorf("%s sent %s, want %s", addr, got, img.Digest)
	}
	return os.Rename(tmp.Name(), path)
}
