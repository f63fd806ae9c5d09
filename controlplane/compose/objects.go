package compose

import (
	"cmp"
	"fmt"
	"path"
	"strconv"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/stack"
)

// objects converts the top-level secrets: or configs: into the stack's
// secrets or configs, reading each value from its source: a file (through
// readFile), an environment variable of the project, or, for a config,
// inline content.
func (c *converter) objects(kind stack.ObjectKind, in map[string]types.FileObjectConfig, readFile func(string) ([]byte, error)) []stack.Object {
	var out []stack.Object
	for _, key := range sortedKeys(in) {
		o := in[key]
		at := fmt.Sprintf("%ss.%s", kind, key)
		obj := stack.Object{Name: key, Spec: api.SecretSpec{Name: o.Name, Labels: copyMap(o.Labels)}, External: bool(o.External)}
		if o.Driver != "" {
			c.ignore("", at+".driver")
		}
		if o.TemplateDriver != "" {
			c.ignore("", at+".template_driver")
		}
		if len(o.DriverOpts) > 0 {
			c.ignore("", at+".driver_opts")
		}
		if obj.External {
			out = append(out, obj)
			continue
		}
		switch {
		case o.File != "":
			obj.Source = "file " + o.File
			if readFile == nil {
				c.fail(at+".file", "%s: reading files is not allowed here", o.File)
				continue
			}
			b, err := readFile(o.File)
			if err != nil {
				c.fail(at+".file", "%v", err)
				continue
			}
			obj.Data = b
		case o.Environment != "":
			obj.Source = "environment " + o.Environment
			v, ok := c.project.Environment[o.Environment]
			if !ok {
				c.fail(at+".environment", "variable %s is not set", o.Environment)
				continue
			}
			obj.Data = []byte(v)
		case o.Content != "":
			obj.Source = "content"
			obj.Data = []byte(o.Content)
		default:
			c.fail(at, "names no value: set file, environment or (configs) content, or external: true")
			continue
		}
		if max := kindOf(kind).MaxBytes(); len(obj.Data) > max {
			c.fail(at, "the value is %d bytes, more than the %d a %s may hold", len(obj.Data), max, kind)
			continue
		}
		out = append(out, obj)
	}
	return out
}

func kindOf(k stack.ObjectKind) api.SecretKind {
	if k == stack.ObjConfig {
		return api.KindConfig
	}
	return api.KindSecret
}

func secretObjects(m types.Secrets) map[string]types.FileObjectConfig {
	out := make(map[string]types.FileObjectConfig, len(m))
	for k, v := range m {
		out[k] = types.FileObjectConfig(v)
	}
	return out
}

func configObjects(m types.Configs) map[string]types.FileObjectConfig {
	out := make(map[string]types.FileObjectConfig, len(m))
	for k, v := range m {
		out[k] = types.FileObjectConfig(v)
	}
	return out
}

func configRefs(in []types.ServiceConfigObjConfig) []types.ServiceSecretConfig {
	out := make([]types.ServiceSecretConfig, len(in))
	for i, r := range in {
		out[i] = types.ServiceSecretConfig(r)
	}
	return out
}

// refs converts a service's secrets: or configs: list. Targets follow
// Compose: a secret goes to /run/secrets/<source> (a relative target is
// under /run/secrets), a config to /<source>.
func (c *converter) refs(kind stack.ObjectKind, in []types.ServiceSecretConfig, fail func(string, string, ...any)) []api.SecretRef {
	var out []api.SecretRef
	for i, r := range in {
		f := fmt.Sprintf("%ss[%d]", kind, i)
		var name string
		switch kind {
		case stack.ObjConfig:
			o, ok := c.project.Configs[r.Source]
			if !ok {
				fail(f+".source", "config %q is not defined under the top-level configs:", r.Source)
				continue
			}
			name = o.Name
		default:
			o, ok := c.project.Secrets[r.Source]
			if !ok {
				fail(f+".source", "secret %q is not defined under the top-level secrets:", r.Source)
				continue
			}
			name = o.Name
		}
		if name == "" {
			name = stack.FullName(c.project.Name, r.Source)
		}
		ref := api.SecretRef{Name: name, Target: r.Target}
		switch {
		case ref.Target == "" && kind == stack.ObjConfig:
			ref.Target = "/" + r.Source
		case ref.Target == "":
			ref.Target = "/run/secrets/" + r.Source
		case !path.IsAbs(ref.Target) && kind == stack.ObjConfig:
			ref.Target = "/" + ref.Target
		case !path.IsAbs(ref.Target):
			ref.Target = "/run/secrets/" + ref.Target
		}
		if path.Clean(ref.Target) != ref.Target {
			fail(f+".target", "%q must be a clean file path", r.Target)
			continue
		}
		for _, id := range []struct {
			field string
			s     string
			into  *uint32
		}{{"uid", r.UID, &ref.UID}, {"gid", r.GID, &ref.GID}} {
			if id.s == "" {
				continue
			}
			n, err := strconv.ParseUint(id.s, 10, 32)
			if err != nil {
				fail(f+"."+id.field, "%q must be a number", id.s)
				continue
			}
			*id.into = uint32(n)
		}
		if r.Mode != nil {
			if *r.Mode&^0o777 != 0 {
				fail(f+".mode", "%o has bits beyond 0777", *r.Mode)
				continue
			}
			ref.Mode = uint32(*r.Mode)
		}
		out = append(out, ref)
	}
	return out
}

// volumes converts the top-level volumes: into the stack's volumes. A
// volume without a driver is the local driver's: a directory on the node
// that runs its first task, which every later task of it goes back to.
func (c *converter) volumes(in types.Volumes) []stack.Volume {
	var out []stack.Volume
	for _, key := range sortedKeys(in) {
		v := in[key]
		at := "volumes." + key
		if err := api.ValidVolumeName(v.Name); err != nil {
			c.fail(at+".name", "%v", err)
			continue
		}
		vol := stack.Volume{Name: key, External: bool(v.External), Spec: api.VolumeSpec{
			Name:   v.Name,
			Driver: cmp.Or(v.Driver, api.LocalDriver),
			Labels: copyMap(v.Labels),
		}}
		if len(v.DriverOpts) > 0 {
			vol.Spec.Opts = copyMap(v.DriverOpts)
		}
		if (vol.Spec.Driver == "" || vol.Spec.Driver == api.LocalDriver) && len(vol.Spec.Opts) > 0 {
			// Docker's local driver mounts what the options say (type,
			// device, o); Warren's is a plain directory and would ignore
			// them, leaving the data somewhere other than the file says.
			c.fail(at+".driver_opts", "the local driver takes no options in Warren (it is a directory on the node); use a volume plugin (docs/volumes.md)")
			continue
		}
		out = append(out, vol)
	}
	return out
}
