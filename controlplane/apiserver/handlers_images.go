package apiserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
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
