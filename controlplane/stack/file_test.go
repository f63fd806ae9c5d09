package stack

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/warrenhq/warren/controlplane/api"
)

var update = flag.Bool("update", false, "rewrite schema.json")

func TestSchemaMatchesTypes(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile("schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("schema.json is stale: run go test ./controlplane/stack -run Schema -update")
	}
	var s map[string]any
	if err := json.Unmarshal(got, &s); err != nil {
		t.Fatal(err)
	}
	// Every enum the checker enforces is a real field of the document, so a
	// renamed field cannot leave its check behind.
	for path := range enums {
		if _, ok := typeAt(reflect.TypeOf(document{}), path); !ok {
			t.Errorf("enum %s names no field of the document", path)
		}
	}
}

// typeAt follows a field path (ports[].protocol) through t.
func typeAt(t reflect.Type, path string) (reflect.Type, bool) {
	for _, part := range strings.Split(path, ".") {
		name, list := strings.CutSuffix(part, "[]")
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil, false
		}
		f, ok := structFields(t)[name]
		if !ok {
			return nil, false
		}
		t = f
		if list {
			if t.Kind() != reflect.Slice {
				return nil, false
			}
			t = t.Elem()
		}
	}
	return t, true
}

func parse(t *testing.T, files ...string) (Stack, error) {
	t.Helper()
	var fs []File
	for i := 0; i+1 < len(files); i += 2 {
		fs = append(fs, File{Name: files[i], Data: []byte(files[i+1])})
	}
	return ParseFiles(fs)
}

func TestParseFiles(t *testing.T) {
	st, err := parse(t, "web.yaml", `kind: Service
name: db
task:
  container: {image: postgres:16}
  health: {kind: exec, command: [pg_isready], interval: 2s, timeout: 1s, retries: 5}
ports: [{target_port: 5432}]
---
kind: Service
name: web
replicas: 3
depends_on: [{service: db, condition: service_healthy, required: true}]
task:
  container:
    image: nginx
    env: [A=1]
ports:
- {protocol: tcp, target_port: 80, published_port: 8080}
update: {strategy: canary, canary_weight: 10}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 2 {
		t.Fatalf("%+v", st)
	}
	web, _ := st.Service("web")
	want := DefaultSpec()
	want.Name = "web"
	want.Replicas = 3
	want.Task.Container.Image = "nginx"
	want.Task.Container.Env = []string{"A=1"}
	want.Ports = []api.PortConfig{{Protocol: api.TCP, TargetPort: 80, PublishedPort: 8080}}
	want.Update.Strategy, want.Update.CanaryWeight = api.StrategyCanary, 10
	if !reflect.DeepEqual(web.Spec, want) {
		t.Errorf("web:\n got %+v\nwant %+v", web.Spec, want)
	}
	if !reflect.DeepEqual(web.DependsOn, []Dependency{{Service: "db", Condition: Healthy, Required: true}}) {
		t.Errorf("%+v", web.DependsOn)
	}
	db, _ := st.Service("db")
	if h := db.Spec.Task.Health; h == nil || h.Interval != api.Duration(2*time.Second) || h.Retries != 5 {
		t.Errorf("%+v", h)
	}
}

func TestParseFilesGlobalDefaultsToNoReplicas(t *testing.T) {
	st, err := parse(t, "a.yaml", "kind: Service\nname: agent\nmode: global\ntask: {container: {image: x}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Services[0].Spec; s.Replicas != 0 || s.Mode != api.ModeGlobal {
		t.Errorf("%+v", s)
	}
}

func TestParseFilesErrors(t *testing.T) {
	const ok = "kind: Service\nname: a\ntask: {container: {image: x}}\n"
	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{"not yaml", []string{"web.yaml", "kind: Service\nname: web\n  replicas: 3\n"}, "web.yaml:3: not YAML: mapping values are not allowed in this context"},
		{"unknown top-level key", []string{"web.yaml", "kind: Service\nname: web\nimage: nginx\n"}, "web.yaml:3: services.web.image: unknown field (known: depends_on, disconnect, kind, labels, mode, name, ports, replicas, task, update, version)"},
		{"unknown nested key", []string{"web.yaml", "kind: Service\nname: web\ntask:\n  container:\n    imag: x\n"}, "web.yaml:5: services.web.task.container.imag: unknown field"},
		{"negative replicas", []string{"web.yaml", "kind: Service\nname: web\ntask: {container: {image: x}}\nreplicas: -1\n"}, "web.yaml:4: services.web.replicas: must be ≥ 0"},
		{"replicas not a number", []string{"web.yaml", "kind: Service\nname: web\nreplicas: three\n"}, "web.yaml:3: services.web.replicas: must be a whole number ≥ 0"},
		{"port out of range", []string{"web.yaml", "kind: Service\nname: web\nports:\n- target_port: 70000\n"}, "web.yaml:4: services.web.ports[0].target_port: must be < 65536"},
		{"bad enum", []string{"web.yaml", "kind: Service\nname: web\nmode: daemon\n"}, "web.yaml:3: services.web.mode: must be one of replicated, global, not \"daemon\""},
		{"bad enum in a list", []string{"web.yaml", "kind: Service\nname: web\nports:\n- {target_port: 80, protocol: sctp}\n"}, "web.yaml:4: services.web.ports[0].protocol: must be one of tcp, udp"},
		{"bad duration", []string{"web.yaml", "kind: Service\nname: web\nupdate: {delay: soon}\n"}, "web.yaml:3: services.web.update.delay: \"soon\": must be a duration"},
		{"bool", []string{"web.yaml", "kind: Service\nname: web\ntask: {container: {read_only: yes please}}\n"}, "services.web.task.container.read_only: must be true or false"},
		{"missing kind", []string{"web.yaml", "name: web\n"}, "web.yaml:1: kind: missing"},
		{"unknown kind", []string{"web.yaml", "kind: Deployment\nname: web\n"}, "web.yaml:1: kind: must be Service, Secret, Config or Volume, not \"Deployment\""},
		{"a secret without a value", []string{"s.yaml", "kind: Secret\nname: pw\n"}, "s.yaml:1: secrets.pw.file: set one of file or environment (or external: true)"},
		{"a secret with two values", []string{"s.yaml", "kind: Secret\nname: pw\nfile: a\nenvironment: B\n"}, "s.yaml:3: secrets.pw.file: set one of file or environment"},
		{"an external secret with a value", []string{"s.yaml", "kind: Config\nname: c\nexternal: true\nfile: a\n"}, "s.yaml:3: configs.c.external: an external config has no file or environment"},
		{"unknown key of a secret", []string{"s.yaml", "kind: Secret\nname: pw\nvalue: x\n"}, "s.yaml:3: secrets.pw.value: unknown field (known: environment, external, file, kind, labels, name)"},
		{"a volume defined twice", []string{"v.yaml", "kind: Volume\nname: data\n---\nkind: Volume\nname: data\n"}, "v.yaml:5: volumes.data: defined twice (first at v.yaml:2)"},
		{"a bad volume name", []string{"v.yaml", "kind: Volume\nname: a/b\n"}, "v.yaml:2: volumes.a/b.name: volume name \"a/b\": must not contain '/'"},
		{"defined twice across documents", []string{"web.yaml", ok + "---\n" + ok}, "web.yaml:6: services.a: defined twice (first at web.yaml:2)"},
		{"defined twice across files", []string{"one.yaml", ok, "two.yaml", ok}, "two.yaml:2: services.a: defined twice (first at one.yaml:2)"},
		{"a port published twice", []string{"web.yaml", "kind: Service\nname: a\nports: [{target_port: 80, published_port: 80}]\n---\nkind: Service\nname: b\nports:\n- {target_port: 81, published_port: 80}\n"},
			"web.yaml:8: services.b.ports[0]: port 80/tcp is already published by services.a.ports[0]"},
		{"depends_on cycle", []string{"web.yaml", "kind: Service\nname: a\ndepends_on: [{service: b, required: true}]\n---\nkind: Service\nname: b\ndepends_on: [{service: a, required: true}]\n"},
			"web.yaml:3: services.a.depends_on: dependency cycle: a -> b -> a"},
		{"unknown dependency", []string{"web.yaml", "kind: Service\nname: a\ndepends_on: [{service: z, required: true}]\n"}, "web.yaml:3: services.a.depends_on.z: no service \"z\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.files...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}

func TestIsWarrenFile(t *testing.T) {
	if !IsWarrenFile([]byte("kind: Service\nname: a\n")) || IsWarrenFile([]byte("services: {a: {image: x}}\n")) || IsWarrenFile([]byte("{{")) {
		t.Error("IsWarrenFile")
	}
}

// The shipped schema and the checker agree: documents the checker accepts
// validate against schema.json, and those it refuses for a field's shape
// do not (editors and CI linters then see what apply will say).
func TestSchemaAgreesWithChecker(t *testing.T) {
	sch, err := jsonschema.NewCompiler().Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../docs/examples/demo/warren.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFiles([]File{{Name: "warren.yaml", Data: example}}); err != nil {
		t.Fatal(err)
	}
	for i, d := range strings.Split(string(example), "\n---\n") {
		if err := validateSchema(t, sch, d); err != nil {
			t.Errorf("example document %d: %v", i, err)
		}
	}
	docs := []string{
		"kind: Service\nname: web\ntask: {container: {image: x}}\nreplicas: -1\n",
		"kind: Service\nname: web\nimage: nginx\n",
		"kind: Service\nname: web\nmode: daemon\n",
		"kind: Service\nname: web\nports: [{target_port: 70000}]\n",
		"kind: Service\nname: web\nupdate: {delay: soon}\n",
		"kind: Service\nname: web\ntask: {container: {read_only: maybe}}\n",
		"kind: Service\nname: web\ndepends_on: [{service: db, condition: service_ready}]\n",
		"kind: Service\nname: web\ntask: {container: {image: x, env: [A=1], labels: {a: b}}, health: {kind: tcp, port: 80, interval: 1m30s, timeout: 1s}}\n",
		"kind: Secret\nname: pw\nfile: db/pw.txt\n",
		"kind: Secret\nname: pw\nvalue: x\n",
		"kind: Config\nname: c\nenvironment: C\nlabels: {a: b}\n",
		"kind: Volume\nname: data\ndriver: sshfs\nopts: {host: h}\n",
		"kind: Volume\nname: data\nreplicas: 1\n",
	}
	for i, d := range docs {
		_, checkErr := ParseFiles([]File{{Name: "doc.yaml", Data: []byte(d)}})
		schemaErr := validateSchema(t, sch, d)
		if (checkErr == nil) != (schemaErr == nil) {
			t.Errorf("document %d: checker says %v, schema says %v\n%s", i, checkErr, schemaErr, d)
		}
	}
}

func validateSchema(t *testing.T, sch *jsonschema.Schema, doc string) error {
	t.Helper()
	var raw any
	if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(raw)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

// FuzzParseFiles: whatever a file holds, ParseFiles answers with a stack or
// an error, never a panic.
func FuzzParseFiles(f *testing.F) {
	example, _ := os.ReadFile("../../docs/examples/demo/warren.yaml")
	for _, seed := range []string{string(example), "kind: Service\nname: a\n", "a: &x [1]\nb: *x\n", "kind: Service\nname: a\ntask: &t {container: {image: x}}\n---\nkind: Service\nname: b\ntask: *t\n", "- 1\n", "kind: Service\nname: a\nports: [{<<: {target_port: 1}}]\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseFiles([]File{{Name: "f.yaml", Data: data}})
	})
}
