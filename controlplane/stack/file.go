package stack

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/warrenhq/warren/controlplane/api"
)

// Warren's own file format (warren.yaml): one or more YAML documents, each
// with a kind and, for a Service, the fields of api.ServiceSpec plus
// depends_on. schema.json is generated from the same types (see Schema).

// Kinds of document.
const (
	KindService = "Service"
	KindSecret  = "Secret"
	KindConfig  = "Config"
	KindVolume  = "Volume"
)

// DefaultSpec is what a Service document starts from, the same defaults
// `warren service create` applies to flags left out.
func DefaultSpec() api.ServiceSpec {
	return api.ServiceSpec{
		Mode:     api.ModeReplicated,
		Replicas: 1,
		Update:   api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1, Order: "stop-first", FailureAction: "pause"},
		Task: api.TaskSpec{
			Container: api.ContainerSpec{StopGrace: api.Duration(10 * time.Second)},
			Restart:   api.RestartPolicy{Condition: api.RestartAny, Delay: api.Duration(100 * time.Millisecond), MaxDelay: api.Duration(10 * time.Second)},
		},
	}
}

// enums are the fields whose values form a closed set, by field path with
// list indexes as []. The checker and the schema both read it.
var enums = map[string][]string{
	"mode":                         {string(api.ModeReplicated), string(api.ModeGlobal)},
	"ports[].protocol":             {string(api.TCP), string(api.UDP)},
	"task.restart.condition":       {string(api.RestartNone), string(api.RestartOnFailure), string(api.RestartAny)},
	"task.health.kind":             {string(api.HealthExec), string(api.HealthHTTP), string(api.HealthTCP)},
	"task.container.mounts[].type": {string(api.MountBind), string(api.MountTmpfs), string(api.MountVolume)},
	"update.strategy":              {string(api.StrategyRolling), string(api.StrategyBlueGreen), string(api.StrategyCanary)},
	"update.order":                 {"stop-first", "start-first"},
	"update.failure_action":        {"pause", "rollback", "continue"},
	"disconnect.reconcile":         {string(api.ReconcileKeepOriginal), string(api.ReconcileKeepReplacement), string(api.ReconcileHealthiest), string(api.ReconcileLongestRunning)},
	"depends_on[].condition":       {string(Started), string(Healthy), string(Completed)},
	"kind":                         {KindService, KindSecret, KindConfig, KindVolume},
}

// document is a Service document: kind and depends_on beside the spec.
type document struct {
	Kind      string       `json:"kind"`
	DependsOn []Dependency `json:"depends_on,omitempty"`
	api.ServiceSpec
}

// IsWarrenFile reports whether data is in Warren's format rather than
// Compose's: its first document has a top-level kind.
func IsWarrenFile(data []byte) bool {
	var head struct {
		Kind string `yaml:"kind"`
	}
	_ = yaml.Unmarshal(data, &head)
	return head.Kind != ""
}

// File is one file to read.
type File struct {
	Name string // shown in errors
	Data []byte
}

// ParseFiles reads Warren files into one stack. Nothing is accepted unless
// everything is: each error names the file, the line and the field.
func ParseFiles(files []File) (Stack, error) {
	var st Stack
	var errs Errors
	type origin struct {
		file string
		line int
	}
	defined := map[string]origin{}
	definedObjects := map[string]string{}
	// positions of every field, by service, to place errors Check finds.
	pos := map[string]map[string]int{}
	fileOf := map[string]string{}
	for _, f := range files {
		name := filepath.Base(f.Name)
		dec := yaml.NewDecoder(bytes.NewReader(f.Data))
		for n := 0; ; n++ {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				line, msg := yamlErr(err)
				errs = append(errs, &FieldError{File: name, Line: line, Msg: "not YAML: " + msg})
				break
			}
			if len(doc.Content) == 0 {
				continue
			}
			root := doc.Content[0]
			if root.Kind != yaml.MappingNode {
				errs = append(errs, &FieldError{File: name, Line: root.Line, Msg: fmt.Sprintf("document %d: must be a mapping with kind: and the object's fields", n+1)})
				continue
			}
			kind, svcName := scalarField(root, "kind"), scalarField(root, "name")
			switch kind {
			case KindService:
			case "":
				errs = append(errs, &FieldError{File: name, Line: root.Line, Field: "kind", Msg: "missing: every document says what it is (kind: Service, Secret, Config or Volume)"})
				continue
			case KindSecret, KindConfig, KindVolume:
				errs = append(errs, parseObject(&st, definedObjects, name, f.Name, root, kind)...)
				continue
			default:
				errs = append(errs, &FieldError{File: name, Line: fieldLine(root, "kind"), Field: "kind", Msg: fmt.Sprintf("must be Service, Secret, Config or Volume, not %q", kind)})
				continue
			}
			at := "services." + svcName
			if svcName == "" {
				errs = append(errs, &FieldError{File: name, Line: root.Line, Field: "name", Msg: "missing: a Service needs a name"})
				continue
			}
			if prev, dup := defined[svcName]; dup {
				errs = append(errs, &FieldError{File: name, Line: fieldLine(root, "name"), Field: at,
					Msg: fmt.Sprintf("defined twice (first at %s:%d)", prev.file, prev.line)})
				continue
			}
			defined[svcName] = origin{name, fieldLine(root, "name")}
			w := &walker{file: name, prefix: at, pos: map[string]int{}}
			w.check(root, reflect.TypeOf(document{}), "")
			if len(w.errs) > 0 {
				errs = append(errs, w.errs...)
				continue
			}
			doc2 := document{ServiceSpec: DefaultSpec()}
			if err := decodeInto(root, &doc2); err != nil {
				errs = append(errs, &FieldError{File: name, Line: root.Line, Field: at, Msg: err.Error()})
				continue
			}
			for i := range doc2.DependsOn {
				if doc2.DependsOn[i].Condition == "" {
					doc2.DependsOn[i].Condition = Started
				}
			}
			if doc2.Mode == api.ModeGlobal && !hasField(root, "replicas") {
				doc2.Replicas = 0
			}
			pos[svcName] = w.pos
			fileOf[svcName] = name
			st.Services = append(st.Services, Service{Name: svcName, DependsOn: doc2.DependsOn, Spec: doc2.ServiceSpec})
		}
	}
	if len(errs) == 0 {
		if err := Check(st); err != nil {
			var ces Errors
			if !errors.As(err, &ces) {
				return Stack{}, err
			}
			for _, e := range ces {
				svc, field := splitServiceField(e.Field)
				e.File = fileOf[svc]
				e.Line = lookupLine(pos[svc], field)
			}
			errs = ces
		}
	}
	if len(errs) > 0 {
		return Stack{}, errs
	}
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	for _, l := range [][]Object{st.Secrets, st.Configs} {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	sort.Slice(st.Volumes, func(i, j int) bool { return st.Volumes[i].Name < st.Volumes[j].Name })
	return st, nil
}

// splitServiceField turns services.web.ports[1] into (web, ports[1]).
func splitServiceField(f string) (string, string) {
	rest, ok := strings.CutPrefix(f, "services.")
	if !ok {
		return "", f
	}
	i := strings.IndexAny(rest, ".")
	if i < 0 {
		return rest, ""
	}
	return rest[:i], rest[i+1:]
}

// lookupLine finds the line of field or of its closest parent.
func lookupLine(pos map[string]int, field string) int {
	for field != "" {
		if l, ok := pos[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return pos[""]
}

// yamlErr splits "yaml: line 3: mapping values are not allowed" into the
// line and the message.
func yamlErr(err error) (int, string) {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(s, "line ")
	if !ok {
		return 0, s
	}
	num, msg, ok := strings.Cut(rest, ": ")
	n, convErr := strconv.Atoi(num)
	if !ok || convErr != nil {
		return 0, s
	}
	return n, msg
}

func scalarField(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode {
			return m.Content[i+1].Value
		}
	}
	return ""
}

func hasField(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

func fieldLine(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return m.Line
}

// decodeInto decodes a checked node over the defaults in v, through JSON so
// the API types' json tags and Duration's text form apply.
func decodeInto(n *yaml.Node, v any) error {
	var raw any
	if err := n.Decode(&raw); err != nil {
		return err
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// walker checks a YAML tree against a Go type before anything is decoded,
// so every error carries its line: unknown keys, wrong kinds of value,
// negative counts, values outside an enum.
type walker struct {
	file   string
	prefix string         // services.web
	pos    map[string]int // field path → line
	errs   Errors
}

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	field := w.prefix
	if path != "" {
		field += "." + path
	}
	w.errs = append(w.errs, &FieldError{File: w.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// enumKey turns ports[2].protocol into ports[].protocol.
func enumKey(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
			b.WriteString("[]")
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (w *walker) check(n *yaml.Node, t reflect.Type, path string) {
	if _, ok := w.pos[path]; !ok {
		w.pos[path] = n.Line
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "must be a duration such as 10s or 1m30s")
			return
		}
		v := reflect.New(t).Interface().(encoding.TextUnmarshaler)
		if err := v.UnmarshalText([]byte(n.Value)); err != nil {
			w.fail(n, path, "%q: must be a duration such as 10s or 1m30s", n.Value)
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.check(n, t.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "must be a mapping of fields")
			return
		}
		fields := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := joinPath(path, k.Value)
			w.pos[sub] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				w.fail(k, sub, "unknown field (known: %s)", strings.Join(sortedNames(fields), ", "))
				continue
			}
			w.check(v, f, sub)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "must be a mapping of KEY: VALUE")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.check(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "must be a list")
			return
		}
		for i, e := range n.Content {
			w.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "must be a string")
			return
		}
		if allowed := enums[enumKey(path)]; len(allowed) > 0 && !contains(allowed, n.Value) {
			w.fail(n, path, "must be one of %s, not %q", strings.Join(allowed, ", "), n.Value)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!bool") {
			w.fail(n, path, "must be true or false")
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v, err := strconv.ParseInt(n.Value, 10, 64)
		switch {
		case n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil:
			w.fail(n, path, "must be a whole number ≥ 0")
		case v < 0:
			w.fail(n, path, "must be ≥ 0")
		case t.Bits() < 64 && uint64(v) >= 1<<t.Bits():
			w.fail(n, path, "must be < %d", uint64(1)<<t.Bits())
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		v, err := strconv.ParseInt(n.Value, 10, 64)
		switch {
		case n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil:
			w.fail(n, path, "must be a whole number")
		case v < 0:
			w.fail(n, path, "must be ≥ 0")
		}
	default:
		w.fail(n, path, "cannot be set from a file")
	}
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// structFields maps json names to field types, following embedded structs.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range structFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func sortedNames(m map[string]reflect.Type) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
