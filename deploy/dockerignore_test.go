package deploy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// ignorePatterns reads .dockerignore. Only the subset of Docker's syntax
// these tests can evaluate is allowed: plain patterns, a leading "**/", no
// exceptions ("!"), no "**" elsewhere.
func ignorePatterns(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rest := strings.TrimPrefix(line, "**/")
		if strings.HasPrefix(line, "!") || strings.Contains(rest, "**") {
			t.Fatalf(".dockerignore pattern %q: exceptions and inner ** are outside what this test evaluates", line)
		}
		out = append(out, strings.TrimPrefix(path.Clean("/"+line), "/"))
	}
	return out
}

// ignored reports whether Docker leaves p (slash-separated, relative to
// the context) out of the build context: a pattern matches the path or
// one of its parent directories; "**/" matches at any depth.
func ignored(patterns []string, p string) (string, bool) {
	parts := strings.Split(p, "/")
	for _, pat := range patterns {
		anyDepth := strings.HasPrefix(pat, "**/")
		pat := strings.TrimPrefix(pat, "**/")
		for end := 1; end <= len(parts); end++ {
			starts := []int{0}
			if anyDepth {
				starts = starts[:0]
				for s := 0; s < end; s++ {
					starts = append(starts, s)
				}
			}
			for _, s := range starts {
				if ok, _ := path.Match(pat, strings.Join(parts[s:end], "/")); ok {
					return pat, true
				}
			}
		}
	}
	return "", false
}

// TestDockerignore: every file `go build ./cmd/stagegate` reads is in the
// build context, and history, local data, keys and env files are not.
func TestDockerignore(t *testing.T) {
	patterns := ignorePatterns(t)
	cmd := exec.Command("go", "list", "-deps", "-json", "./cmd/stagegate")
	cmd.Dir = root
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(out)
	for {
		var pkg struct {
			Dir                                               string
			Module                                            *struct{ Main bool }
			GoFiles, CgoFiles, EmbedFiles, SFiles, OtherFiles []string
		}
		if err := dec.Decode(&pkg); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if pkg.Module == nil || !pkg.Module.Main {
			continue
		}
		rel, err := filepath.Rel(abs, pkg.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, files := range [][]string{pkg.GoFiles, pkg.CgoFiles, pkg.EmbedFiles, pkg.SFiles, pkg.OtherFiles} {
			for _, f := range files {
				needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Skipf("go list ./cmd/stagegate failed (the tree does not build right now): %v", err)
	}
	if len(needed) < 20 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, f := range needed {
		if pat, ok := ignored(patterns, f); ok {
			t.Errorf("%s is needed by the build but .dockerignore's %q leaves it out", f, pat)
		}
	}
	for _, f := range []string{".git/config", "stagegate-data/stagegate.db", "stagegate-data/keys/prod.key", "stagegate",
		"deploy/stagegate.env", "deploy/compose.yaml", "internal/server/testdata/x", "keys/ci.key", "local.env"} {
		if _, ok := ignored(patterns, f); !ok {
			t.Errorf("%s would be sent to the build context; .dockerignore should leave it out", f)
		}
	}
}
