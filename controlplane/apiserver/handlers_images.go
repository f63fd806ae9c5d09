package apiserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/imagearchive"
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
	platforms := s.archivePlatforms(tmp.Name(), name)
	final, _ := s.blobPath(digest)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("image %q: store blob: %w", name, err)
	}
	img := api.Image{Name: name, Digest: digest, Size: size, Holders: []string{s.b.NodeID()}, CreatedAt: s.cfg.Now(), Platforms: platforms}
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
	// The blob goes only when no other name points at it. Every other
	// manager's replicator deletes its own copy once it sees the image gone
	// (controlplane/manager/images.go).
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
	caller := "node"
	if r.Header.Get(headerNoRelay) != "" {
		caller = "manager"
	}
	imageBlobRequests.WithLabelValues(caller).Inc()
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) && caller == "node" {
		// Every manager fetches every image in the background; one that
		// has not yet (it just joined, or was down) fetches it now, so
		// the node need not wait.
		if ferr := s.HoldImage(r.Context(), name); ferr != nil {
			if _, serr := os.Stat(p); serr != nil {
				return errorf(http.StatusBadGateway, "image %q: this manager does not hold the archive and could not fetch it from %s: %v", name, strings.Join(img.Holders, ", "), ferr)
			}
			// Fetched and verified, only not recorded yet: serve it; the
			// replicator records the holder on its next round.
			s.log.Info("image fetched for a node, holder not recorded", zap.String("image", name), zap.Error(ferr))
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

// HoldImage makes this manager a holder of the image's archive: it
// fetches the blob from a manager that holds it unless the blob is on disk
// already (blobs are only ever renamed into place after their digest was
// checked), then records itself as a holder through the leader. It is
// what the manager's image replicator calls for every image it lacks.
func (s *Server) HoldImage(ctx context.Context, name string) error {
	v := s.b.View()
	img, ok := v.Image(name)
	if !ok {
		return fmt.Errorf("image %q: %w", name, errImageGone)
	}
	p, err := s.blobPath(img.Digest)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		if err := s.fetchBlob(ctx, v, img, p); err != nil {
			return fmt.Errorf("image %q: fetch: %w", name, err)
		}
	} else if err != nil {
		return fmt.Errorf("image %q: %w", name, err)
	}
	if slices.Contains(img.Holders, s.b.NodeID()) {
		return nil
	}
	return s.changeHolders(ctx, img, []string{s.b.NodeID()}, nil)
}

// DropImageHolders removes holders (managers that left the cluster) from
// an image's record. Only the leader calls it.
func (s *Server) DropImageHolders(ctx context.Context, name, digest string, gone []string) error {
	img, ok := s.b.View().Image(name)
	if !ok || img.Digest != digest {
		return nil
	}
	return s.changeHolders(ctx, img, nil, gone)
}

var errImageGone = errors.New("no longer in the cluster")

// changeHolders records holder changes on the leader: here when this
// manager leads, else by asking the leader (POST /v1/image-holders).
func (s *Server) changeHolders(ctx context.Context, img api.Image, add, drop []string) error {
	if s.b.IsLeader() {
		return s.updateHolders(ctx, img.Name, img.Digest, add, drop)
	}
	_, addr, err := s.leaderAPIAddr(ctx)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(imageHolderRequest{Digest: img.Digest, Drop: drop})
	u := url.URL{Scheme: "https", Host: addr, Path: "/v1/image-holders/" + img.Name}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: s.managerTransport()}).Do(req)
	if err != nil {
		return fmt.Errorf("record image holder at the leader %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("record image holder at the leader %s: %s: %s", addr, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// imageHolderRequest is the body of POST /v1/image-holders/{name}: the
// calling manager holds the archive of Digest (the digest it verified, so
// a holder is never recorded for an image replaced meanwhile), and the
// leader's replicator may name managers that left (Drop).
type imageHolderRequest struct {
	Digest string   `json:"digest"`
	Drop   []string `json:"drop,omitempty"`
}

func (s *Server) recordImageHolder(w http.ResponseWriter, r *http.Request, id Identity) error {
	name := r.PathValue("name")
	var req imageHolderRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	var add []string
	if len(req.Drop) == 0 {
		add = []string{id.NodeID}
	}
	if err := s.updateHolders(r.Context(), name, req.Digest, add, req.Drop); err != nil {
		return err
	}
	img, _ := s.b.View().Image(name)
	writeJSON(w, http.StatusOK, img)
	return nil
}

// updateHolders is a read-modify-write of one image's holders on the
// leader. Every holder change goes through here, one at a time (holdersMu),
// so two managers that finish fetching at once cannot overwrite each
// other's entry. It is a plain batch, not one conditional on the image's
// version: a manager of the previous release, which knows no such
// condition, applies it like its peers during a rolling upgrade. A change
// lost across a leader change heals on the replicator's next round (a
// manager with the blob on disk and not recorded claims it again).
func (s *Server) updateHolders(ctx context.Context, name, digest string, add, drop []string) error {
	s.holdersMu.Lock()
	defer s.holdersMu.Unlock()
	img, ok := s.b.View().Image(name)
	if !ok {
		return errorf(http.StatusNotFound, "image %q not found", name)
	}
	if img.Digest != digest {
		return errorf(http.StatusConflict, "image %q is now %s, not %s", name, shortDigest(img.Digest), shortDigest(digest))
	}
	next := img
	next.Holders = slices.DeleteFunc(slices.Clone(img.Holders), func(h string) bool { return slices.Contains(drop, h) })
	for _, h := range add {
		if !slices.Contains(next.Holders, h) {
			next.Holders = append(next.Holders, h)
		}
	}
	if slices.Equal(next.Holders, img.Holders) {
		return nil
	}
	_, err := s.apply(ctx, &store.Batch{PutImages: []api.Image{next}})
	return err
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// archivePlatforms reads the platforms the archive at path offers for the
// image name. An archive that does not say (or cannot be read as one) has
// none recorded, and its tasks may go to any node, as before platforms
// were recorded.
func (s *Server) archivePlatforms(path, name string) []api.Platform {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	imgs, err := imagearchive.Read(f)
	if err != nil {
		s.log.Info("image archive: no platforms recorded", zap.String("image", name), zap.Error(err))
		return nil
	}
	for _, im := range imgs {
		if imageStoreName(im.Name) == name {
			return im.Platforms
		}
	}
	if len(imgs) == 1 {
		return imgs[0].Platforms
	}
	return nil
}

// fetchBlob copies an image archive from a manager that holds it into
// path, verifying its digest.
func (s *Server) fetchBlob(ctx context.Context, v *store.View, img api.Image, path string) error {
	hc := &http.Client{Transport: s.managerTransport()}
	var lastErr error = errors.New("no holder is a manager with an API address")
	for _, holder := range img.Holders {
		n, ok := v.Node(holder)
		if !ok || holder == s.b.NodeID() || n.Status.Manager == nil || n.Status.Manager.APIAddr == "" {
			continue
		}
		if lastErr = s.fetchBlobFrom(ctx, hc, n.Status.Manager.APIAddr, img, path); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

// imageBlobRequests counts archive downloads served, by caller: a node
// importing an image, or a manager replicating it. A node that restarts
// a task from its local copy adds nothing.
var imageBlobRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "warren_image_blob_requests_total",
	Help: "Image archive downloads asked of this manager, by caller (node or manager).",
}, []string{"caller"})

func init() {
	imageBlobRequests.WithLabelValues("node")
	imageBlobRequests.WithLabelValues("manager")
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
