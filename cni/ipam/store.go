package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Store is a Pool persisted as JSON in a directory. Each operation takes an
// exclusive lock on a lock file, loads the pool, applies the change and
// replaces the state file atomically, so concurrent plugin processes and a
// crash at any point leave a consistent table.
type Store struct {
	subnet netip.Prefix
	path   string
	lock   string
}

// Open returns the store of subnet under dir, creating dir if needed.
func Open(dir string, subnet netip.Prefix) (*Store, error) {
	if _, err := NewPool(subnet); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ipam: create data dir: %w", err)
	}
	name := strings.NewReplacer("/", "_", ":", "_").Replace(subnet.Masked().String())
	return &Store{
		subnet: subnet.Masked(),
		path:   filepath.Join(dir, name+".json"),
		lock:   filepath.Join(dir, name+".lock"),
	}, nil
}

// Path is the state file, for diagnostics.
func (s *Store) Path() string { return s.path }

// Allocate leases an address to (containerID, ifName), idempotently.
func (s *Store) Allocate(containerID, ifName string) (netip.Addr, error) {
	var got netip.Addr
	err := s.update(func(p *Pool) (bool, error) {
		before, had := p.Lookup(Owner{containerID, ifName})
		a, err := p.Allocate(Owner{containerID, ifName})
		got = a
		return err == nil && !(had && before == a), err
	})
	return got, err
}

// Release frees the lease of (containerID, ifName); unknown owners are fine.
func (s *Store) Release(containerID, ifName string) error {
	return s.update(func(p *Pool) (bool, error) {
		_, ok := p.Release(Owner{containerID, ifName})
		return ok, nil
	})
}

// Retain frees every lease not held by one of valid and returns the owners
// it freed.
func (s *Store) Retain(valid []Owner) ([]Owner, error) {
	keep := map[Owner]bool{}
	for _, o := range valid {
		keep[o] = true
	}
	var freed []Owner
	err := s.update(func(p *Pool) (bool, error) {
		freed = p.Retain(keep)
		return len(freed) > 0, nil
	})
	return freed, err
}

// Lookup returns the address leased to (containerID, ifName).
func (s *Store) Lookup(containerID, ifName string) (netip.Addr, bool, error) {
	var (
		a  netip.Addr
		ok bool
	)
	err := s.update(func(p *Pool) (bool, error) {
		a, ok = p.Lookup(Owner{containerID, ifName})
		return false, nil
	})
	return a, ok, err
}

// Snapshot returns a copy of the current pool.
func (s *Store) Snapshot() (*Pool, error) {
	var out *Pool
	err := s.update(func(p *Pool) (bool, error) {
		out = p
		return false, nil
	})
	return out, err
}

// update runs fn on the pool under the lock and persists it when fn reports
// a change.
func (s *Store) update(fn func(*Pool) (changed bool, err error)) error {
	unlock, err := lockFile(s.lock)
	if err != nil {
		return fmt.Errorf("ipam: lock %s: %w", s.lock, err)
	}
	defer unlock()
	p, err := s.load()
	if err != nil {
		return err
	}
	changed, err := fn(p)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	return s.save(p)
}

func (s *Store) load() (*Pool, error) {
	p, _ := NewPool(s.subnet)
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ipam: read state: %w", err)
	}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("ipam: decode %s: %w", s.path, err)
	}
	if p.Subnet != s.subnet {
		return nil, fmt.Errorf("ipam: %s holds subnet %s, want %s", s.path, p.Subnet, s.subnet)
	}
	if p.Leases == nil {
		p.Leases = map[netip.Addr]Owner{}
	}
	return p, nil
}

func (s *Store) save(p *Pool) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("ipam: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".state-*")
	if err != nil {
		return fmt.Errorf("ipam: write state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("ipam: write state: %w", err)
	}
	// fsync before rename: after a power cut the file is either the old or
	// the new table, never a truncated one that would double-lease addresses.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ipam: sync state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ipam: write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("ipam: replace state: %w", err)
	}
	return nil
}
