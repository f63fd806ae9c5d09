package apiserver

import (
	"net/http"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
	"github.com/warrenhq/warren/controlplane/store"
)

// Autolock: the unlock key lives in raft sealed under the KEK, so every
// manager (each holds the KEK in memory) can wrap its own KEK file with it,
// and a manager's disk alone opens neither (docs/security.md).

func (s *Server) autolockRoutes() []Route {
	return []Route{
		{http.MethodPost, "/v1/cluster/update", admins, Write, s.updateCluster},
		{http.MethodGet, "/v1/cluster/unlock-key", admins, Read, s.unlockKey},
		{http.MethodPost, "/v1/cluster/unlock-key/rotate", admins, Write, s.rotateUnlockKey},
		// A locked manager serves this route from its own locked server
		// (manager.waitUnlock) before raft starts; an unlocked one says so.
		{http.MethodPost, "/v1/cluster/unlock", admins, Local, s.unlockUnlocked},
	}
}

func (s *Server) newUnlockKey() (key string, sealed []byte, err error) {
	kek := s.b.KEK()
	if len(kek) == 0 {
		return "", nil, errorf(http.StatusServiceUnavailable, "%s", LockedMessage)
	}
	k, err := secretbox.NewKey(s.cfg.Rand)
	if err != nil {
		return "", nil, err
	}
	sealed, err = secretbox.Seal(kek, k, secretbox.AADUnlockKey, s.cfg.Rand)
	if err != nil {
		return "", nil, err
	}
	return secretbox.FormatUnlockKey(k), sealed, nil
}

func (s *Server) updateCluster(w http.ResponseWriter, r *http.Request, _ Identity) error {
	var req client.ClusterUpdate
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Autolock == nil {
		return errorf(http.StatusBadRequest, "cluster update: nothing to change (autolock)")
	}
	v := s.b.View()
	c, err := s.cluster(v)
	if err != nil {
		return err
	}
	next := *c
	var out client.ClusterUpdateResult
	switch {
	case *req.Autolock == c.Autolock:
		out.Index = v.Index()
		writeJSON(w, http.StatusOK, out)
		return nil
	case *req.Autolock:
		key, sealed, err := s.newUnlockKey()
		if err != nil {
			return err
		}
		next.Autolock, next.Keys.UnlockKey, out.UnlockKey = true, sealed, key
	default:
		// Turned off, the key is forgotten: enabling again makes a new one.
		next.Autolock, next.Keys.UnlockKey = false, nil
	}
	if out.Index, err = s.apply(r.Context(), &store.Batch{
		Expect:  []store.Expectation{{Kind: store.KindCluster, Version: c.Meta.Version}},
		Cluster: &next,
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func autolockOn(c *api.Cluster) error {
	if !c.Autolock || len(c.Keys.UnlockKey) == 0 {
		return errorf(http.StatusBadRequest, "autolock is off: turn it on with warren cluster update --autolock=true")
	}
	return nil
}

func (s *Server) unlockKey(w http.ResponseWriter, r *http.Request, _ Identity) error {
	c, err := s.cluster(s.b.View())
	if err != nil {
		return err
	}
	if err := autolockOn(c); err != nil {
		return err
	}
	k, err := secretbox.Open(s.b.KEK(), c.Keys.UnlockKey, secretbox.AADUnlockKey)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.UnlockKeyInfo{UnlockKey: secretbox.FormatUnlockKey(k)})
	return nil
}

func (s *Server) rotateUnlockKey(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	c, err := s.cluster(v)
	if err != nil {
		return err
	}
	if err := autolockOn(c); err != nil {
		return err
	}
	key, sealed, err := s.newUnlockKey()
	if err != nil {
		return err
	}
	next := *c
	next.Keys.UnlockKey = sealed
	if _, err := s.apply(r.Context(), &store.Batch{
		Expect:  []store.Expectation{{Kind: store.KindCluster, Version: c.Meta.Version}},
		Cluster: &next,
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.UnlockKeyInfo{UnlockKey: key})
	return nil
}

func (s *Server) unlockUnlocked(w http.ResponseWriter, r *http.Request, _ Identity) error {
	return errorf(http.StatusBadRequest, "this manager is not locked")
}
