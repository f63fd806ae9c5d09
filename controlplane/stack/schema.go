package stack

import (
	"encoding/json"
	"reflect"
	"sort"

	"github.com/warrenhq/warren/controlplane/api"
)

// Schema is the JSON schema of a Warren file's documents, generated
// from the Go types the file decodes into, with the same enums the checker
// enforces. schema.json in this package is its committed copy (a test keeps
// them equal) for editors and CI linters.
func Schema() ([]byte, error) {
	doc := func(v any, kinds []string, name map[string]any) map[string]any {
		s := schemaOf(reflect.TypeOf(v), "")
		props := s["properties"].(map[string]any)
		props["kind"] = map[string]any{"enum": kinds}
		props["name"] = name
		s["required"] = []string{"kind", "name"}
		return s
	}
	root := map[string]any{"oneOf": []any{
		doc(document{}, []string{KindService}, map[string]any{"type": "string", "pattern": "^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"}),
		doc(secretDocument{}, []string{KindSecret, KindConfig}, map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}),
		doc(volumeDocument{}, []string{KindVolume}, map[string]any{"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$"}),
	}}
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "https://warren.dev/schema/warren.yaml.json"
	root["title"] = "warren.yaml document"
	return json.MarshalIndent(root, "", "  ")
}

func schemaOf(t reflect.Type, path string) map[string]any {
	if t == reflect.TypeOf(api.Grace(0)) {
		return map[string]any{"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$|^inf$"}
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return map[string]any{"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), path)
	case reflect.Struct:
		props := map[string]any{}
		fields := structFields(t)
		names := sortedNames(fields)
		sort.Strings(names)
		for _, n := range names {
			props[n] = schemaOf(fields[n], joinPath(path, n))
		}
		return map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), path+".*")}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), path+"[]")}
	case reflect.String:
		if e := enums[path]; len(e) > 0 {
			return map[string]any{"type": "string", "enum": e}
		}
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s := map[string]any{"type": "integer", "minimum": 0}
		if t.Bits() < 64 {
			s["maximum"] = uint64(1)<<t.Bits() - 1
		}
		return s
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer", "minimum": 0}
	}
	return map[string]any{}
}
