package stack

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/warrenhq/warren/controlplane/api"
)

// secretDocument is a warren.yaml Secret or Config: where its value comes
// from, read by the CLI when it applies the file (ResolveValues).
type secretDocument struct {
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// File is a path relative to the file that declares the document.
	File        string `json:"file,omitempty"`
	Environment string `json:"environment,omitempty"`
	// External: the object exists already; the stack only uses it.
	External bool `json:"external,omitempty"`
}

// volumeDocument is a warren.yaml Volume: api.VolumeSpec's fields an
// operator sets (`warren volume create` takes the same).
type volumeDocument struct {
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	Driver      string            `json:"driver,omitempty"`
	Opts        map[string]string `json:"opts,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Shared      bool              `json:"shared,omitempty"`
	Constraints []string          `json:"constraints,omitempty"`
	External    bool              `json:"external,omitempty"`
}

// parseObject reads one Secret, Config or Volume document into st. path is
// the declaring file's path, which a value's file is relative to.
func parseObject(st *Stack, defined map[string]string, file, path string, root *yaml.Node, kind string) Errors {
	name := scalarField(root, "name")
	plural := strings.ToLower(kind) + "s"
	at := plural + "." + name
	if name == "" {
		return Errors{&FieldError{File: file, Line: root.Line, Field: "name", Msg: "missing: a " + kind + " needs a name"}}
	}
	if prev, dup := defined[at]; dup {
		return Errors{&FieldError{File: file, Line: fieldLine(root, "name"), Field: at, Msg: "defined twice (first at " + prev + ")"}}
	}
	defined[at] = fmt.Sprintf("%s:%d", file, fieldLine(root, "name"))
	w := &walker{file: file, prefix: at, pos: map[string]int{}}
	fail := func(field, msg string) Errors {
		line := fieldLine(root, field)
		if line == 0 {
			line = root.Line
		}
		return Errors{&FieldError{File: file, Line: line, Field: at + "." + field, Msg: msg}}
	}
	if kind == KindVolume {
		w.check(root, reflect.TypeOf(volumeDocument{}), "")
		if len(w.errs) > 0 {
			return w.errs
		}
		var d volumeDocument
		if err := decodeInto(root, &d); err != nil {
			return Errors{&FieldError{File: file, Line: root.Line, Field: at, Msg: err.Error()}}
		}
		if err := api.ValidVolumeName(name); err != nil {
			return fail("name", err.Error())
		}
		v := Volume{Name: name, External: d.External, Spec: api.VolumeSpec{Driver: d.Driver, Opts: d.Opts, Labels: d.Labels, Shared: d.Shared, Constraints: d.Constraints}}
		if v.Spec.Driver == "" {
			v.Spec.Driver = api.LocalDriver
		}
		if d.External {
			v.Spec.Name = name
		}
		st.Volumes = append(st.Volumes, v)
		return nil
	}
	w.check(root, reflect.TypeOf(secretDocument{}), "")
	if len(w.errs) > 0 {
		return w.errs
	}
	var d secretDocument
	if err := decodeInto(root, &d); err != nil {
		return Errors{&FieldError{File: file, Line: root.Line, Field: at, Msg: err.Error()}}
	}
	o := Object{Name: name, External: d.External, Spec: api.SecretSpec{Labels: d.Labels}, Decl: defined[at]}
	switch {
	case d.External && (d.File != "" || d.Environment != ""):
		return fail("external", "an external "+strings.ToLower(kind)+" has no file or environment: its value is the cluster's")
	case d.External:
		o.Spec.Name = name
	case (d.File == "") == (d.Environment == ""):
		return fail("file", "set one of file or environment (or external: true)")
	case d.File != "":
		o.File = d.File
		if !filepath.IsAbs(o.File) {
			o.File = filepath.Join(filepath.Dir(path), o.File)
		}
		o.Source = "file " + o.File
	default:
		o.Env = d.Environment
		o.Source = "environment " + d.Environment
	}
	if kind == KindSecret {
		st.Secrets = append(st.Secrets, o)
	} else {
		st.Configs = append(st.Configs, o)
	}
	return nil
}

// ResolveValues reads the values of a parsed warren.yaml's secrets and
// configs from their files and variables; reading is the caller's, so
// ParseFiles stays pure. Every problem is reported, naming the object.
func ResolveValues(st *Stack, readFile func(string) ([]byte, error), lookupEnv func(string) (string, bool)) error {
	var errs Errors
	for _, set := range []struct {
		kind ObjectKind
		objs []Object
	}{{ObjSecret, st.Secrets}, {ObjConfig, st.Configs}} {
		for i := range set.objs {
			o := &set.objs[i]
			at := fmt.Sprintf("%ss.%s", set.kind, o.Name)
			switch {
			case o.External:
			case o.File != "":
				b, err := readFile(o.File)
				if err != nil {
					errs = append(errs, &FieldError{File: o.Decl, Field: at + ".file", Msg: err.Error()})
					continue
				}
				o.Data = b
			case o.Env != "":
				v, ok := lookupEnv(o.Env)
				if !ok {
					errs = append(errs, &FieldError{File: o.Decl, Field: at + ".environment", Msg: "variable " + o.Env + " is not set"})
					continue
				}
				o.Data = []byte(v)
			}
			if max := apiKind(set.kind).MaxBytes(); len(o.Data) > max {
				errs = append(errs, &FieldError{File: o.Decl, Field: at, Msg: fmt.Sprintf("the value is %d bytes, more than the %d a %s may hold", len(o.Data), max, set.kind)})
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// QualifyRefs points a warren.yaml's mounts of the secrets, configs and
// volumes it declares at their cluster names (STACK_NAME), and gives a
// secret or config mount without a target Compose's place for it
// (/run/secrets/NAME, /NAME) rather than one named after the cluster name.
// Mounts of objects the files do not declare are left as written: they name
// cluster objects. Compose files need none of this: Convert names mounts
// itself.
func QualifyRefs(st Stack, stack string) Stack {
	declared := func(objs []Object) map[string]bool {
		m := map[string]bool{}
		for _, o := range objs {
			if !o.External {
				m[o.Name] = true
			}
		}
		return m
	}
	secrets, configs := declared(st.Secrets), declared(st.Configs)
	vols := map[string]bool{}
	for _, v := range st.Volumes {
		if !v.External {
			vols[v.Name] = true
		}
	}
	out := st
	out.Services = make([]Service, len(st.Services))
	for i, svc := range st.Services {
		c := &svc.Spec.Task.Container
		c.Secrets = qualifyRefs(c.Secrets, secrets, stack, "/run/secrets/")
		c.Configs = qualifyRefs(c.Configs, configs, stack, "/")
		if len(c.Mounts) > 0 {
			ms := append([]api.Mount(nil), c.Mounts...)
			for j := range ms {
				if ms[j].Type == api.MountVolume && vols[ms[j].Source] {
					ms[j].Source = FullName(stack, ms[j].Source)
				}
			}
			c.Mounts = ms
		}
		out.Services[i] = svc
	}
	return out
}

func qualifyRefs(refs []api.SecretRef, declared map[string]bool, stack, dir string) []api.SecretRef {
	if len(refs) == 0 {
		return refs
	}
	out := append([]api.SecretRef(nil), refs...)
	for i, r := range out {
		if !declared[r.Name] {
			continue
		}
		if r.Target == "" {
			out[i].Target = dir + r.Name
		}
		out[i].Name = FullName(stack, r.Name)
	}
	return out
}
