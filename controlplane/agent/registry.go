package agent

import (
	"encoding/json"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/secretbox"
)

// setPull keeps, for each task that will run, what its executor needs to
// pull the image: the cluster's registry settings and the credentials by
// the host they are for. They stay in the agent's memory (not in the
// cache, not in reports, not in logs); the executor asks PullAuth at each
// pull, so a task retrying a refused pull uses a login changed since.
func (a *Agent) setPull(as *api.Assignments) {
	a.mu.Lock()
	key := a.cacheKey
	a.mu.Unlock()
	creds := openRegistryAuth(as, key, a.log)
	next := map[string]*api.PullAuth{}
	for _, t := range as.Tasks {
		if !t.DesiredState.Terminal() {
			next[t.ID] = pullAuth(t, as.Registry, creds)
		}
	}
	a.mu.Lock()
	a.pull = next
	a.mu.Unlock()
}

// PullAuth is how the executor pulls task taskID's image now; nil for a
// task the agent does not know (yet).
func (a *Agent) PullAuth(taskID string) *api.PullAuth {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pull[taskID]
}

// registryAuth is an opened registry credential with the name it is kept
// under (a host for a login, service.<name> for a service's own).
type registryAuth struct {
	name string
	cred api.RegistryCredential
}

func openRegistryAuth(as *api.Assignments, key []byte, log *zap.Logger) map[string]registryAuth {
	out := map[string]registryAuth{}
	if len(key) == 0 {
		return out // after a restart, until a manager answers: pulls go without
	}
	for _, v := range as.Secrets {
		if v.Kind != api.KindRegistryAuth {
			continue
		}
		pt, err := secretbox.Open(key, v.Sealed, secretbox.ValueAAD(string(v.Kind), v.ID))
		if err != nil {
			log.Warn("registry credential cannot be opened", zap.String("name", v.Name), zap.Error(err))
			continue
		}
		var c api.RegistryCredential
		err = json.Unmarshal(pt, &c)
		clear(pt)
		if err != nil {
			log.Warn("registry credential is not JSON", zap.String("name", v.Name))
			continue
		}
		out[v.ID] = registryAuth{name: v.Name, cred: c}
	}
	return out
}

// pullAuth picks a task's credentials: the login of every host it may
// pull from (mirrors, then the registry), and for the registry itself the
// service's own credential (--with-registry-auth) over the login.
func pullAuth(t api.Task, cfg api.RegistryConfig, byID map[string]registryAuth) *api.PullAuth {
	p := &api.PullAuth{Registry: cfg}
	image := t.Spec.Container.Image
	byName := map[string]api.RegistryCredential{}
	for _, ra := range byID {
		byName[ra.name] = ra.cred
	}
	for _, h := range cfg.PullHosts(image) {
		if c, ok := byName[h]; ok {
			if p.Credentials == nil {
				p.Credentials = map[string]api.RegistryCredential{}
			}
			p.Credentials[h] = c
		}
	}
	if ra, ok := byID[t.Spec.Container.RegistryAuth]; ok && t.Spec.Container.RegistryAuth != "" {
		if p.Credentials == nil {
			p.Credentials = map[string]api.RegistryCredential{}
		}
		p.Credentials[api.ImageHost(image)] = ra.cred
	}
	return p
}
