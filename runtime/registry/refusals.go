package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Refusals remembers the pulls a registry refused for good reasons (401,
// 404, no matching platform), so that a task its restart policy retries
// every few hundred milliseconds does not ask the registry each time: the
// same reference with the same credentials waits, doubling from Min to
// Max. A failure that may pass by itself (the registry down, a timeout) is
// not remembered: those are retried at the task's own pace. Time is an
// argument, so the rules are table-tested.
type Refusals struct {
	Min, Max time.Duration

	mu sync.Mutex
	m  map[string]refusal
}

type refusal struct {
	until time.Time
	wait  time.Duration
	err   error
}

// Permanent reports whether err is one a retry with the same reference
// and credentials cannot cure.
func Permanent(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoPlatform)
}

// Check returns the remembered refusal of key while it holds, nil when a
// pull may be tried.
func (r *Refusals) Check(key string, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	x, ok := r.m[key]
	if !ok || !now.Before(x.until) {
		return nil
	}
	return fmt.Errorf("not asking the registry again for %v (the same pull was refused): %w", x.until.Sub(now).Round(time.Second), x.err)
}

// Record notes the outcome of a pull of key: a permanent refusal is kept
// for twice as long as the last one (Min at first), anything else forgets.
func (r *Refusals) Record(key string, err error, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil || !Permanent(err) {
		delete(r.m, key)
		return
	}
	if r.m == nil {
		r.m = map[string]refusal{}
	}
	wait := r.Min
	if x, ok := r.m[key]; ok {
		wait = min(2*x.wait, r.Max)
	}
	r.m[key] = refusal{until: now.Add(wait), wait: wait, err: err}
}

// RefusalKey names a pull: the reference and a hash of the credentials it
// is tried with, so a new login is tried at once.
func RefusalKey(ref string, creds map[string]api.RegistryCredential) string {
	hosts := make([]string, 0, len(creds))
	for h := range creds {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	sum := sha256.New()
	for _, h := range hosts {
		c := creds[h]
		fmt.Fprintf(sum, "%s\x00%s\x00%s\x00", h, c.Username, c.Password)
	}
	return ref + "\x00" + hex.EncodeToString(sum.Sum(nil))
}
