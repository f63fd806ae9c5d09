package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The rule these tests enforce: cmd/warren wires the node's network but does
// not compute it. Every kernel configuration (mesh.Config, dataplane.Config,
// dns.Config, cni.NetConf) and every dataplane constructor is reached
// through dataplane/nodenet, where it is golden-tested; what cmd/warren may
// still use from the kernel-side packages is the short list below of entry
// points that are commands or argv dispatch, not conversions. Nothing but
// cmd/warren imports nodenet: it is where intent meets this node's kernel.

const module = "github.com/warrenhq/warren/"

// kernelSide are the import-path prefixes whose API cmd/warren must reach
// through nodenet.
var kernelSide = []string{module + "dataplane", module + "cni"}

const nodenetPath = module + "dataplane/nodenet"

// allowed are the kernel-side identifiers cmd/warren may use, by import path.
var allowed = map[string][]string{
	module + "dataplane/nodedevice": {"IsInvocation", "Main"}, // argv dispatch: the node's device process (WireGuard, DNS)
	module + "cni":                  {"Main"},                 // argv dispatch: warren-cni
	module + "dataplane/ebpf":       {"Unpin"},                // `warren leave` removes the node's pins
}

func isKernelSide(path string) bool {
	if path == nodenetPath {
		return false
	}
	for _, p := range kernelSide {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// kernelUses lists "file: pkg.Name" for every use of a kernel-side package's
// identifier that is not allowed, and for every function that takes or
// returns api.Assignments (the input of the conversions).
func kernelUses(fset *token.FileSet, f *ast.File) []string {
	local := map[string]string{} // local name -> import path
	apiName := ""
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := filepath.Base(path)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if path == module+"controlplane/api" {
			apiName = name
		}
		if isKernelSide(path) {
			local[name] = path
		}
	}
	var bad []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			if !ok {
				return true
			}
			path, ok := local[id.Name]
			if ok && !contains(allowed[path], n.Sel.Name) {
				bad = append(bad, fset.Position(n.Pos()).String()+": "+path+"."+n.Sel.Name)
			}
		case *ast.FuncType:
			for _, fl := range []*ast.FieldList{n.Params, n.Results} {
				if fl == nil {
					continue
				}
				for _, field := range fl.List {
					if apiName != "" && mentionsAssignments(field.Type, apiName) {
						bad = append(bad, fset.Position(field.Pos()).String()+": a function of api.Assignments (conversions belong in nodenet)")
					}
				}
			}
		}
		return true
	})
	return bad
}

func mentionsAssignments(e ast.Expr, apiName string) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if s, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := s.X.(*ast.Ident); ok && id.Name == apiName && s.Sel.Name == "Assignments" {
				found = true
			}
		}
		return !found
	})
	return found
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestCmdWarrenComputesNoNetwork(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, b := range kernelUses(fset, f) {
			t.Errorf("%s: cmd/warren wires the network; compute it in dataplane/nodenet", b)
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d files: the rule checked almost nothing", checked)
	}
}

// TestKernelUsesCatchesViolations proves the checker is not vacuous.
func TestKernelUsesCatchesViolations(t *testing.T) {
	src := `package main
import (
	"github.com/warrenhq/warren/controlplane/api"
	dp "github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/ebpf"
	"github.com/warrenhq/warren/dataplane/mesh"
	"github.com/warrenhq/warren/dataplane/nodedevice"
	"github.com/warrenhq/warren/dataplane/nodenet"
)
func convert(a *api.Assignments) *dp.Config { return nil }
func wire() {
	_ = mesh.Config{}
	_, _ = ebpf.New(ebpf.Options{})
	ebpf.Unpin("/sys/fs/bpf/warren/n1")
	nodedevice.Main(nil)
	_ = nodenet.DataplaneConfig
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "bad.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := kernelUses(fset, f)
	var short []string
	for _, g := range got {
		short = append(short, g[strings.Index(g, ": ")+2:])
	}
	sort.Strings(short)
	want := []string{
		"a function of api.Assignments (conversions belong in nodenet)",
		module + "dataplane.Config",
		module + "dataplane/ebpf.New",
		module + "dataplane/ebpf.Options",
		module + "dataplane/mesh.Config",
	}
	if strings.Join(short, "\n") != strings.Join(want, "\n") {
		t.Errorf("flagged:\n%s\nwant:\n%s", strings.Join(short, "\n"), strings.Join(want, "\n"))
	}
}

func TestOnlyCmdWarrenImportsNodenet(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	importers := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		for _, imp := range fields[1:] {
			if imp != nodenetPath {
				continue
			}
			if fields[0] != module+"cmd/warren" {
				t.Errorf("%s imports dataplane/nodenet: only cmd/warren may", fields[0])
			} else {
				importers++
			}
			break
		}
	}
	if importers == 0 {
		t.Fatal("cmd/warren does not import dataplane/nodenet: the rule checked nothing")
	}
}
