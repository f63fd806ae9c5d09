package agent

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/warrenhq/warren/controlplane/api"
)

// CacheFile is the agent's bbolt file in the data directory.
const CacheFile = "agent.db"

var (
	bucketState   = []byte("state")
	bucketReports = []byte("reports")
	keyAssign     = []byte("assignments")
	keyManagers   = []byte("managers")
	// keyHeard is when a manager last answered (disconnect.go).
	keyHeard = []byte("heard")
)

// cache persists what the agent must survive a reboot with. Writes are
// fsynced (bbolt's default); a status report is only acknowledged to the
// runtime's caller after it is on disk.
type cache struct{ db *bolt.DB }

func openCache(dir string) (*cache, error) {
	path := filepath.Join(dir, CacheFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open agent cache %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketState, bucketReports} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init agent cache %s: %w", path, err)
	}
	return &cache{db: db}, nil
}

func (c *cache) close() error { return c.db.Close() }

func (c *cache) get(key []byte, v any) (bool, error) {
	var found bool
	err := c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState).Get(key)
		if b == nil {
			return nil
		}
		found = true
		return json.Unmarshal(b, v)
	})
	if err != nil {
		return false, fmt.Errorf("agent cache: read %s: %w", key, err)
	}
	return found, nil
}

func (c *cache) put(key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("agent cache: encode %s: %w", key, err)
	}
	if err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketState).Put(key, b) }); err != nil {
		return fmt.Errorf("agent cache: write %s: %w", key, err)
	}
	return nil
}

func (c *cache) managers() ([]string, error) {
	var m []string
	_, err := c.get(keyManagers, &m)
	return m, err
}

func (c *cache) putReport(taskID string, st api.TaskStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("agent cache: encode report %s: %w", taskID, err)
	}
	return c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketReports).Put([]byte(taskID), b) })
}

// ackReports drops the reports that were delivered, unless a newer one for
// the same task arrived meanwhile (sent says what was delivered).
func (c *cache) ackReports(sent map[string]api.TaskStatus) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketReports)
		for id, st := range sent {
			var cur api.TaskStatus
			raw := bk.Get([]byte(id))
			if raw == nil {
				continue
			}
			if err := json.Unmarshal(raw, &cur); err != nil || sameStatus(cur, st) {
				if err := bk.Delete([]byte(id)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (c *cache) reports() (map[string]api.TaskStatus, error) {
	out := map[string]api.TaskStatus{}
	err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReports).ForEach(func(k, v []byte) error {
			var st api.TaskStatus
			if err := json.Unmarshal(v, &st); err != nil {
				return nil // an unreadable report is dropped, not fatal
			}
			out[string(k)] = st
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("agent cache: read reports: %w", err)
	}
	return out, nil
}

func sameStatus(a, b api.TaskStatus) bool {
	return a.State == b.State && a.Timestamp.Equal(b.Timestamp) && a.Message == b.Message && a.Err == b.Err &&
		a.ContainerID == b.ContainerID && a.PID == b.PID && a.ExitCode == b.ExitCode && a.Addr == b.Addr &&
		a.Health == b.Health && a.Restarts == b.Restarts && a.Pull == b.Pull
}
