package stack

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// LabelDigest holds, on a secret or config a stack created, a digest of the
// value it was created with. The API never returns a secret's value, so this
// is how a re-apply of an unchanged file knows to leave the value (and the
// tasks reading it) alone.
const LabelDigest = "com.warren.stack.digest"

// ObjectKind names the objects other than services a stack creates.
type ObjectKind string

const (
	ObjSecret ObjectKind = "secret"
	ObjConfig ObjectKind = "config"
	ObjVolume ObjectKind = "volume"
)

// Object is a secret or config of a stack.
type Object struct {
	// Name is the name inside the stack (the Compose key).
	Name string `json:"name"`
	// Spec.Name is the cluster-wide name: STACK_NAME unless the file
	// names it, or the name of an external object.
	Spec api.SecretSpec `json:"spec"`
	// External objects exist already: the stack uses them, never creates,
	// changes or removes them.
	External bool `json:"external,omitempty"`
	// Source says where the value comes from ("file /x/y", "environment
	// DB_PASSWORD"), for messages.
	Source string `json:"source,omitempty"`
	// Data is the value. It is never printed: `stack config` shows only
	// its digest, in the labels.
	Data []byte `json:"-"`
	// File or Env is where ResolveValues reads Data from (warren.yaml).
	File string `json:"-"`
	Env  string `json:"-"`
	// Decl is where a warren.yaml declares it (file:line), for errors.
	Decl string `json:"-"`
}

// Volume is a named volume of a stack.
type Volume struct {
	Name     string         `json:"name"`
	Spec     api.VolumeSpec `json:"spec"`
	External bool           `json:"external,omitempty"`
}

// Digest is the value of LabelDigest for a value of the named object. The
// object's cluster name is mixed in so that two objects holding the same
// value do not show it by equal labels. It is a plain hash, so a guess of
// a low-entropy value can be checked against it by whoever may read the
// object's labels (cluster administrators); docs/apply.md says so.
func Digest(kind ObjectKind, name string, data []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "warren-stack-%s\x00%s\x00", kind, name)
	h.Write(data)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func qualifyObjects(in []Object, kind ObjectKind, stack string) []Object {
	out := make([]Object, len(in))
	for i, o := range in {
		if o.Spec.Name == "" {
			o.Spec.Name = FullName(stack, o.Name)
		}
		if !o.External {
			labels := maps.Clone(o.Spec.Labels)
			if labels == nil {
				labels = map[string]string{}
			}
			labels[LabelStack] = stack
			labels[LabelService] = o.Name
			labels[LabelDigest] = Digest(kind, o.Spec.Name, o.Data)
			o.Spec.Labels = labels
		}
		out[i] = o
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func qualifyVolumes(in []Volume, stack string) []Volume {
	out := make([]Volume, len(in))
	for i, v := range in {
		if v.Spec.Name == "" {
			v.Spec.Name = FullName(stack, v.Name)
		}
		if !v.External {
			labels := maps.Clone(v.Spec.Labels)
			if labels == nil {
				labels = map[string]string{}
			}
			labels[LabelStack] = stack
			labels[LabelService] = v.Name
			v.Spec.Labels = labels
		}
		out[i] = v
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Current is what the cluster holds, as MakePlanAll compares it.
type Current struct {
	Services []api.Service
	// Secrets holds secrets and configs (Kind tells them apart); their
	// values are not needed.
	Secrets []api.Secret
	Volumes []api.Volume
}

// ObjectStep is the plan for one secret, config or volume.
type ObjectStep struct {
	Action Action     `json:"action"`
	Kind   ObjectKind `json:"kind"`
	// Name is the cluster-wide name.
	Name string `json:"name"`
	// Object is what to create or update (secrets and configs).
	Object *Object `json:"object,omitempty"`
	// Volume is what to create (volumes).
	Volume *api.VolumeSpec `json:"volume,omitempty"`
	// Why says what changed, for an update.
	Why string `json:"why,omitempty"`
}

// planObjects compares the stack's secrets, configs and volumes with the
// cluster's. As with services, only objects labelled with the stack are its
// own; an unlabelled one of the same name is a conflict, unless the file
// declares it external, and then it must exist.
func planObjects(desired Stack, cur Current, prune bool) (steps, deletes []ObjectStep, orphans []string, err error) {
	secrets := map[ObjectKind]map[string]api.Secret{ObjSecret: {}, ObjConfig: {}}
	for _, s := range cur.Secrets {
		k := ObjSecret
		if s.Kind == api.KindConfig {
			k = ObjConfig
		}
		secrets[k][s.Spec.Name] = s
	}
	for _, kind := range []ObjectKind{ObjSecret, ObjConfig} {
		objs := desired.Secrets
		if kind == ObjConfig {
			objs = desired.Configs
		}
		wanted := map[string]bool{}
		for i := range objs {
			o := &objs[i]
			name := o.Spec.Name
			wanted[name] = true
			have, exists := secrets[kind][name]
			switch {
			case o.External && !exists:
				return nil, nil, nil, fmt.Errorf("%ss.%s: external %s %s does not exist (create it with warren %s create %s)", kind, o.Name, kind, name, kind, name)
			case o.External:
			case exists && have.Spec.Labels[LabelStack] != desired.Name:
				return nil, nil, nil, fmt.Errorf("%ss.%s: %s %s exists and is not part of stack %s (label %s): remove or rename it, or declare it external", kind, o.Name, kind, name, desired.Name, LabelStack)
			case !exists:
				steps = append(steps, ObjectStep{Action: Create, Kind: kind, Name: name, Object: o})
			case have.Spec.Labels[LabelDigest] != o.Spec.Labels[LabelDigest]:
				steps = append(steps, ObjectStep{Action: Update, Kind: kind, Name: name, Object: o, Why: "value (from " + o.Source + ")"})
			case !maps.Equal(have.Spec.Labels, o.Spec.Labels):
				steps = append(steps, ObjectStep{Action: Update, Kind: kind, Name: name, Object: o, Why: "labels"})
			default:
				steps = append(steps, ObjectStep{Action: Unchanged, Kind: kind, Name: name})
			}
		}
		var gone []string
		for name, s := range secrets[kind] {
			if s.Spec.Labels[LabelStack] == desired.Name && !wanted[name] {
				gone = append(gone, name)
			}
		}
		sort.Strings(gone)
		for _, name := range gone {
			if prune {
				deletes = append(deletes, ObjectStep{Action: Delete, Kind: kind, Name: name})
			} else {
				orphans = append(orphans, string(kind)+" "+name)
			}
		}
	}

	vols := map[string]api.Volume{}
	for _, v := range cur.Volumes {
		vols[v.Name] = v
	}
	ours := stackServiceNames(desired.Name, cur.Services)
	for _, svc := range desired.Services {
		ours[svc.Spec.Name] = true
	}
	wanted := map[string]bool{}
	for i := range desired.Volumes {
		v := &desired.Volumes[i]
		name := v.Spec.Name
		wanted[name] = true
		have, exists := vols[name]
		switch {
		case v.External && !exists:
			return nil, nil, nil, fmt.Errorf("volumes.%s: external volume %s does not exist (create it with warren volume create %s)", v.Name, name, name)
		case v.External:
		case exists && have.Spec.Labels[LabelStack] == "" && ours[have.Status.CreatedBy]:
			// Made by the first use of one of the stack's services (as an
			// apply before stacks had volumes did): it is the stack's data.
			steps = append(steps, ObjectStep{Action: Unchanged, Kind: ObjVolume, Name: name, Why: "created by the first use of " + have.Status.CreatedBy})
		case exists && have.Spec.Labels[LabelStack] != desired.Name:
			return nil, nil, nil, fmt.Errorf("volumes.%s: volume %s exists and is not part of stack %s (label %s): remove or rename it, or declare it external", v.Name, name, desired.Name, LabelStack)
		case !exists:
			spec := v.Spec
			steps = append(steps, ObjectStep{Action: Create, Kind: ObjVolume, Name: name, Volume: &spec})
		case volumeDriver(have.Spec) != volumeDriver(v.Spec) || !maps.Equal(have.Spec.Opts, v.Spec.Opts):
			// The API has no volume update: the data lives with the driver
			// it was made by, so a new driver or options mean a new volume.
			return nil, nil, nil, fmt.Errorf("volumes.%s: volume %s exists with driver %s %s, the file asks for %s %s: volumes cannot change in place (warren volume rm %s, then apply again)",
				v.Name, name, volumeDriver(have.Spec), optString(have.Spec.Opts), volumeDriver(v.Spec), optString(v.Spec.Opts), name)
		default:
			steps = append(steps, ObjectStep{Action: Unchanged, Kind: ObjVolume, Name: name})
		}
	}
	var gone []string
	for name, v := range vols {
		if ownVolume(desired.Name, v, ours) && !wanted[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		if prune {
			deletes = append(deletes, ObjectStep{Action: Delete, Kind: ObjVolume, Name: name})
		} else {
			orphans = append(orphans, "volume "+name)
		}
	}
	return steps, deletes, orphans, nil
}

func volumeDriver(s api.VolumeSpec) string {
	if s.Driver == "" {
		return api.LocalDriver
	}
	return s.Driver
}

func optString(m map[string]string) string {
	if len(m) == 0 {
		return "(no options)"
	}
	var kv []string
	for _, k := range sortedKeys(m) {
		kv = append(kv, k+"="+m[k])
	}
	return strings.Join(kv, ",")
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func stackServiceNames(stack string, services []api.Service) map[string]bool {
	out := map[string]bool{}
	for _, s := range services {
		if s.Spec.Labels[LabelStack] == stack {
			out[s.Spec.Name] = true
		}
	}
	return out
}

// ownVolume: labelled with the stack, or made by the first use of one of
// its services.
func ownVolume(stack string, v api.Volume, services map[string]bool) bool {
	l := v.Spec.Labels[LabelStack]
	return l == stack || l == "" && services[v.Status.CreatedBy]
}

// StackObjects are the secrets, configs and volumes of the cluster labelled
// with stack (and volumes made by the first use of its services), as `stack
// rm` removes them.
func StackObjects(stack string, services []api.Service, secrets []api.Secret, volumes []api.Volume) []ObjectStep {
	ours := stackServiceNames(stack, services)
	var out []ObjectStep
	for _, s := range secrets {
		if s.Spec.Labels[LabelStack] != stack {
			continue
		}
		k := ObjSecret
		if s.Kind == api.KindConfig {
			k = ObjConfig
		}
		out = append(out, ObjectStep{Action: Delete, Kind: k, Name: s.Spec.Name})
	}
	for _, v := range volumes {
		if ownVolume(stack, v, ours) {
			out = append(out, ObjectStep{Action: Delete, Kind: ObjVolume, Name: v.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}
