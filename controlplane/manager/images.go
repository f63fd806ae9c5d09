package manager

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
)

// Every manager keeps every loaded image, so that losing the manager an
// image was loaded through loses nothing: the replicator fetches, in the
// background, each archive this manager lacks from a manager that holds
// it, and deletes the blobs no image names any more. What to do is decided
// by planImages, a pure function; replicateImages only does the I/O.

// imageView is what planImages decides from.
type imageView struct {
	Images []api.Image
	// Members are the managers in raft's configuration (voters or not):
	// the managers that count. Empty when raft could not say, and then
	// nobody is dropped.
	Members []string
	Self    string
	Leader  bool
	// Blobs are the archives on this manager's disk: digest → mtime.
	Blobs map[string]time.Time
	// Retry holds, per image name, the earliest time a failed fetch may
	// be tried again; Busy the names being fetched now.
	Retry map[string]time.Time
	Busy  map[string]bool
	// Seen is, per digest, when an earlier round last saw an image name
	// it. A blob older than that and named no more was removed (image rm,
	// or replaced by a load under the same name): it goes at once.
	Seen map[string]time.Time
	Now  time.Time
	// Grace keeps any other unreferenced blob younger than this: an upload
	// or a fetch renames its blob into place just before its raft write.
	Grace time.Duration
}

// imageWork is what the replicator should do next.
type imageWork struct {
	// Hold are the images to fetch (or, when the blob is already on
	// disk, only to record this manager as a holder of), by name.
	Hold []string
	// Remove are blobs on disk that no image names (by digest).
	Remove []string
	// Drop, on the leader, lists per image the holders that are no longer
	// managers, so that `image ls` counts only managers that are.
	Drop map[string][]string
	// Wake is the earliest retry still waiting (zero: none).
	Wake time.Time
}

// planImages is the replicator's decision: images × holders × this
// manager → what to fetch, what to delete, which holders to drop.
func planImages(in imageView) imageWork {
	var w imageWork
	member := len(in.Members) == 0 || slices.Contains(in.Members, in.Self)
	referenced := map[string]bool{}
	fetching := map[string]bool{} // digests a Hold or a busy fetch will bring
	imgs := slices.Clone(in.Images)
	slices.SortFunc(imgs, func(a, b api.Image) int { return strings.Compare(a.Name, b.Name) })
	for _, img := range imgs {
		if in.Busy[img.Name] {
			fetching[img.Digest] = true
		}
	}
	for _, img := range imgs {
		referenced[img.Digest] = true
		if in.Leader && len(in.Members) > 0 {
			for _, h := range img.Holders {
				if !slices.Contains(in.Members, h) {
					if w.Drop == nil {
						w.Drop = map[string][]string{}
					}
					w.Drop[img.Name] = append(w.Drop[img.Name], h)
				}
			}
		}
		_, local := in.Blobs[img.Digest]
		if !member || in.Busy[img.Name] || (local && slices.Contains(img.Holders, in.Self)) {
			continue
		}
		if !local && fetching[img.Digest] {
			continue // another name of the same archive brings it; claimed next round
		}
		if t, ok := in.Retry[img.Name]; ok && t.After(in.Now) {
			if w.Wake.IsZero() || t.Before(w.Wake) {
				w.Wake = t
			}
			continue
		}
		w.Hold = append(w.Hold, img.Name)
		if !local {
			fetching[img.Digest] = true
		}
	}
	for d, mtime := range in.Blobs {
		seen, wasNamed := in.Seen[d]
		if !referenced[d] && ((wasNamed && mtime.Before(seen)) || in.Now.Sub(mtime) >= in.Grace) {
			w.Remove = append(w.Remove, d)
		}
	}
	slices.Sort(w.Remove)
	return w
}

// imageRetry is the wait before the n-th retry of a failed fetch: 1 s,
// doubling, at most 30 s; a holder that is down for long is asked twice a
// minute.
func imageRetry(n int) time.Duration {
	if n > 5 {
		return 30 * time.Second
	}
	return min(time.Second<<max(n-1, 0), 30*time.Second)
}

const (
	// imageFetchers bounds the archives fetched at once: each is a full
	// read of a peer's disk and of the link to it.
	imageFetchers = 2
	// imageBlobGrace is imageView.Grace.
	imageBlobGrace = time.Minute
	// imageRescan bounds how long a due retry or an unreferenced blob
	// waits when nothing is written to the store.
	imageRescan = 10 * time.Second
	// imageFetchTimeout bounds one fetch: minutes for a large archive
	// between managers, which share a LAN or at least a good link.
	imageFetchTimeout = 15 * time.Minute
)

type imageResult struct {
	name string
	took time.Duration
	err  error
}

// replicateImages runs on every manager, leader or not, until ctx ends.
func (m *Manager) replicateImages(ctx context.Context) {
	dir := filepath.Join(m.cfg.DataDir, BlobsDir, "sha256")
	log := m.log.With(zap.String("loop", "images"))
	// A restarted manager's store is its snapshot until raft has replayed
	// the log; a blob of an image loaded after that snapshot would look
	// unused, and this may be its only copy. So nothing is decided before
	// the store has caught up.
	for {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := m.raft.WaitCaughtUp(wctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.Info("image replication waits for the store to catch up", zap.Error(err))
	}
	changed := make(chan struct{}, 1)
	go func() {
		var idx uint64
		for {
			n, err := m.st.WaitIndex(ctx, idx)
			if err != nil {
				return
			}
			idx = n
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}()
	retry, attempts := map[string]time.Time{}, map[string]int{}
	seen := map[string]time.Time{}
	busy := map[string]bool{}
	done := make(chan imageResult)
	for {
		var members []string
		if ms, err := m.raft.Members(); err == nil {
			for _, mb := range ms {
				members = append(members, mb.ID)
			}
		}
		now := time.Now()
		images := m.st.View().Images()
		w := planImages(imageView{
			Images: images, Members: members, Self: m.ident.NodeID, Leader: m.raft.IsLeader(),
			Blobs: listBlobs(dir), Retry: retry, Busy: busy, Seen: seen, Now: now, Grace: imageBlobGrace,
		})
		clear(seen)
		for _, img := range images {
			seen[img.Digest] = now
		}
		for _, d := range w.Remove {
			if err := os.Remove(filepath.Join(dir, strings.TrimPrefix(d, "sha256:"))); err != nil && !os.IsNotExist(err) {
				log.Warn("remove unused image blob", zap.String("digest", d), zap.Error(err))
			} else {
				log.Info("removed unused image blob", zap.String("digest", d))
			}
		}
		for name, gone := range w.Drop {
			img, _ := m.st.View().Image(name)
			if err := m.api.DropImageHolders(ctx, name, img.Digest, gone); err != nil {
				log.Info("drop image holders that left", zap.String("image", name), zap.Strings("holders", gone), zap.Error(err))
			}
		}
		for _, name := range w.Hold {
			if len(busy) >= imageFetchers {
				break
			}
			busy[name] = true
			go func() {
				begin := time.Now()
				// Bounded, so a holder that hangs mid-transfer (cut off, not
				// closed) frees the slot and the retry asks another holder.
				fctx, cancel := context.WithTimeout(ctx, imageFetchTimeout)
				err := m.api.HoldImage(fctx, name)
				cancel()
				select {
				case done <- imageResult{name: name, took: time.Since(begin), err: err}:
				case <-ctx.Done():
				}
			}()
		}
		wait := imageRescan
		if !w.Wake.IsZero() {
			wait = max(min(wait, time.Until(w.Wake)), 10*time.Millisecond)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case r := <-done:
			delete(busy, r.name)
			if r.err != nil {
				attempts[r.name]++
				retry[r.name] = time.Now().Add(imageRetry(attempts[r.name]))
				log.Info("image not replicated yet; will retry", zap.String("image", r.name), zap.Int("attempt", attempts[r.name]), zap.Error(r.err))
			} else {
				delete(attempts, r.name)
				delete(retry, r.name)
				log.Info("image held by this manager", zap.String("image", r.name), zap.Duration("took", r.took))
			}
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
		// Forget the backoff of images that are gone.
		for name := range retry {
			if _, ok := m.st.View().Image(name); !ok {
				delete(retry, name)
				delete(attempts, name)
			}
		}
	}
}

// listBlobs reads the archives in dir: sha256:<hex> → mtime. Temporary
// files of uploads and fetches live one level up and are not listed.
func listBlobs(dir string) map[string]time.Time {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]time.Time{}
	for _, e := range ents {
		if _, err := hex.DecodeString(e.Name()); err != nil || len(e.Name()) != 64 || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out["sha256:"+e.Name()] = info.ModTime()
	}
	return out
}
