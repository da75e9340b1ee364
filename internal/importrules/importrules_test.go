package importrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Patterns use the go command's convention: "x/..." matches x and every
// package below it.
var (
	gin      = "github.com/gin-gonic/gin/..."
	adapters = []string{
		gin,
		// database/sql only: semver, which registry needs, imports
		// database/sql/driver for its Valuer and Scanner methods, and those
		// interfaces open no connection.
		"database/sql",
		"github.com/jackc/pgx/...",
		"modernc.org/sqlite/...",
		"github.com/minio/minio-go/...",
	}
)

// TestDomainIsolation: the domain packages and the wire types depend on
// none of the adapters' libraries, directly or through anything else.
// Packages are relative to the module root; one that does not exist yet is
// skipped, so a rule can be written before its package.
func TestDomainIsolation(t *testing.T) {
	g := loadGraph(t)
	tests := []struct {
		pkg       string
		forbidden []string
	}{
		{"registry", adapters},
		{"gates", adapters},
		{"promotion", adapters},
		{"rollback", adapters},
		{"audit", adapters},
		{"environment", adapters},
		{"api", adapters},
		{"ci", adapters},
		{"client", adapters},
		// Storage hygiene works through the blob and metadata contracts.
		{"internal/hygiene", adapters},
		{"oci", adapters},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			pkg := g.module + "/" + tt.pkg
			p, ok := g.pkgs[pkg]
			if !ok {
				t.Skipf("%s does not exist yet", pkg)
			}
			if p.Error != nil {
				t.Fatalf("%s cannot be listed, so its imports are unknown: %s", pkg, p.Error.Err)
			}
			for _, pattern := range tt.forbidden {
				if chain := g.path(pkg, pattern); chain != nil {
					t.Errorf("%s must not depend on %s, but does: %s", tt.pkg, pattern, g.format(chain))
				}
			}
		})
	}
}

// TestDirectImports: some libraries may be imported only by the package
// that adapts them.
func TestDirectImports(t *testing.T) {
	g := loadGraph(t)
	tests := []struct {
		pattern string
		only    []string // relative to the module root
	}{
		{gin, []string{"internal/httpapi"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			for _, pkg := range g.own {
				rel := strings.TrimPrefix(strings.TrimPrefix(pkg, g.module), "/")
				if slices.Contains(tt.only, rel) {
					continue
				}
				var hits []string
				for _, imp := range g.pkgs[pkg].Imports {
					if match(tt.pattern, imp) {
						hits = append(hits, imp)
					}
				}
				if len(hits) > 0 {
					t.Errorf("%s imports %s (in %s); only %s may",
						pkg, strings.Join(hits, ", "), g.importingFiles(pkg, hits), strings.Join(tt.only, ", "))
				}
			}
		})
	}
}

// pkg is the part of `go list -json` output the rules read.
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Module     *struct {
		Path string
		Main bool
	}
	Error *struct{ Err string }
}

type graph struct {
	module string
	pkgs   map[string]*pkg // every package the module's packages reach
	own    []string        // the module's packages, sorted
}

// loadGraph lists the module's packages and everything they depend on.
// Test files are not listed: the rules are about what ships.
func loadGraph(t *testing.T) *graph {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" || gomod == "NUL" {
		t.Fatal("not inside a module: go env GOMOD is empty")
	}
	// -e: a package that does not compile is still listed with its
	// imports, so another package's half-done refactor does not hide a
	// violation here.
	cmd := exec.Command(gobin, "list", "-e", "-deps", "-json=ImportPath,Dir,GoFiles,Imports,Module,Error", "./...")
	cmd.Dir = filepath.Dir(gomod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	g := &graph{pkgs: map[string]*pkg{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		g.pkgs[p.ImportPath] = p
		if p.Module != nil && p.Module.Main {
			g.module = p.Module.Path
			g.own = append(g.own, p.ImportPath)
		}
	}
	if g.module == "" {
		t.Fatal("go list reported no package of the main module")
	}
	slices.Sort(g.own)
	return g
}

// path returns the shortest import chain from `from` to a package matching
// pattern, or nil when there is none.
func (g *graph) path(from, pattern string) []string {
	parent := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if match(pattern, cur) {
			var chain []string
			for p := cur; p != ""; p = parent[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		if p, ok := g.pkgs[cur]; ok {
			for _, imp := range p.Imports {
				if _, seen := parent[imp]; !seen {
					parent[imp] = cur
					queue = append(queue, imp)
				}
			}
		}
	}
	return nil
}

// format writes a chain with the module's own packages shortened.
func (g *graph) format(chain []string) string {
	out := make([]string, len(chain))
	for i, p := range chain {
		if rel, ok := strings.CutPrefix(p, g.module+"/"); ok {
			p = rel
		}
		out[i] = p
	}
	return strings.Join(out, " -> ")
}

// importingFiles names the files of pkg that import any of imps, so the
// failure points at the line to change.
func (g *graph) importingFiles(pkg string, imps []string) string {
	p := g.pkgs[pkg]
	var files []string
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
		if err != nil {
			continue
		}
		for _, spec := range f.Imports {
			if path, err := strconv.Unquote(spec.Path.Value); err == nil && slices.Contains(imps, path) {
				files = append(files, name)
				break
			}
		}
	}
	if len(files) == 0 {
		return "file unknown"
	}
	return strings.Join(files, ", ")
}

func match(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	return path == pattern
}
