package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/internal/signing/signingtest"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &cli{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }}
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := exitOK
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = c.reportError(err)
	}
	return code, stdout.String(), stderr.String()
}

// startServer runs the embedded default on a test HTTP server and returns
// its data directory (for `keys create`) and URL.
func startServer(t *testing.T) (dataDir, url string) {
	t.Helper()
	dataDir = t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dataDir
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
		server.WithSigners(signingtest.Signers(t)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return dataDir, hs.URL
}

func TestCLIPushPull(t *testing.T) {
	dataDir, url := startServer(t)

	code, out, errOut := runCLI(t, nil, "keys", "create", "--data-dir", dataDir, "--env", "dev", "--role", "publisher", "--name", "ci")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, errOut)
	}
	token := strings.TrimSpace(out)
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(token, "sgk_") {
		t.Fatalf("keys create must print the token alone, got %q", out)
	}
	env := map[string]string{"STAGEGATE_URL": url, "STAGEGATE_TOKEN": token}

	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "shards"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"config.json": `{"a":1}`, "shards/part-1.bin": "one", "shards/part-2.bin": "two"}
	for p, data := range files {
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := runCLI(t, env, "push", "ranker@v2.1.0", "--kind", "model", "--label", "team=search", src); code != 0 || !strings.Contains(out, "published ranker@2.1.0 in dev") {
		t.Fatalf("push: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCLI(t, env, "push", "ranker@2.1.0", "--kind", "model", "--label", "team=search", src, "-o", "json"); code != 0 || !strings.Contains(out, `"created": false`) {
		t.Fatalf("idempotent push: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, env, "push", "ranker@2.1.0", "--kind", "model", src); code != exitError || !strings.Contains(errOut, "version_exists") {
		t.Fatalf("conflicting push: %d %q", code, errOut)
	}
	if code, out, _ := runCLI(t, env, "push", "ranker@2.1.0", "--kind", "model", src, "-o", "json"); code != exitError || !strings.Contains(out, `"code": "version_exists"`) {
		t.Fatalf("conflicting push -o json: %d %q", code, out)
	}

	dst := t.TempDir()
	if code, _, errOut := runCLI(t, env, "pull", "ranker@2.1.0", "--env", "dev", "-o", dst); code != 0 {
		t.Fatalf("pull: %d %s", code, errOut)
	}
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(dst, p))
		if err != nil || string(got) != want {
			t.Fatalf("pulled %s = %q, %v", p, got, err)
		}
	}

	sigDir := t.TempDir()
	if code, _, errOut := runCLI(t, env, "pull", "ranker@2.1.0", "--env", "dev", "-o", sigDir, "--with-signature"); code != 0 {
		t.Fatalf("pull --with-signature: %d %s", code, errOut)
	}
	for _, f := range []string{"manifest.json", "manifest.json.sig"} {
		if _, err := os.Stat(filepath.Join(sigDir, f)); err != nil {
			t.Fatalf("pull --with-signature did not write %s: %v", f, err)
		}
	}
	if code, out, errOut := runCLI(t, env, "verify", "ranker@2.1.0", "--env", "dev"); code != 0 || strings.Count(out, "ok  ") != 5 {
		t.Fatalf("verify: %d %q %q", code, out, errOut)
	}
	otherKey := filepath.Join(t.TempDir(), "prod.pub")
	if err := os.WriteFile(otherKey, signingtest.Signers(t)["prod"].PublicKeyPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, env, "verify", "ranker@2.1.0", "--env", "dev", "--key", otherKey); code != exitError || !strings.Contains(out, "FAIL  environment signature") {
		t.Fatalf("verify with another environment's key: %d %q", code, out)
	}

	code, out, _ = runCLI(t, env, "versions", "ranker", "--env", "dev", "-o", "json")
	var listed struct {
		Versions []struct{ Version string } `json:"versions"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Versions) != 1 || listed.Versions[0].Version != "2.1.0" {
		t.Fatalf("versions -o json: %d %q", code, out)
	}

	if code, _, errOut := runCLI(t, env, "versions", "ranker", "--env", "prod"); code != exitError || !strings.Contains(errOut, "wrong_environment") {
		t.Fatalf("cross-environment read: %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t, env, "push", "no-version", "--kind", "model", src); code != exitUsage {
		t.Fatalf("bad ref: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := runCLI(t, nil, "versions", "ranker", "--env", "dev"); code != exitUsage {
		t.Fatalf("missing token: exit %d, want %d", code, exitUsage)
	}
}

// TestCLIPromoteExitCodes: a refused promotion prints the check table and
// exits 3; an error exits 1; a passing one exits 0.
func TestCLIPromoteExitCodes(t *testing.T) {
	dataDir, url := startServer(t)
	key := func(env, role string) map[string]string {
		_, out, _ := runCLI(t, nil, "keys", "create", "--data-dir", dataDir, "--env", env, "--role", role, "--name", env+"-"+role,
			"--owner", env+"-"+role+"@example.test")
		return map[string]string{"STAGEGATE_URL": url, "STAGEGATE_TOKEN": strings.TrimSpace(out)}
	}
	pub, promoter := key("dev", "publisher"), key("staging", "promoter")
	src := t.TempDir()
	weights := filepath.Join(src, "weights.onnx")
	if err := os.WriteFile(weights, []byte("onnx bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, pub, "push", "scorer@1.0.0", "--kind", "model", weights); code != 0 {
		t.Fatalf("push: %s", errOut)
	}
	code, out, errOut := runCLI(t, promoter, "promote", "scorer@1.0.0", "--to", "staging")
	if code != exitGateFailed || !strings.Contains(out, "required-evidence") || !strings.Contains(out, "FAILED") || !strings.Contains(errOut, "gate_failed") {
		t.Fatalf("refused promotion: exit %d\n%s\n%s", code, out, errOut)
	}
	junit := filepath.Join(src, "junit.xml")
	if err := os.WriteFile(junit, []byte(`<testsuite tests="1"><testcase name="ok"/></testsuite>`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, pub, "evidence", "add", "scorer@1.0.0", "--type", "junit", junit); code != 0 {
		t.Fatalf("evidence add: %s", errOut)
	}
	if code, out, errOut := runCLI(t, pub, "evidence", "get", "scorer@1.0.0", "--env", "dev", "--type", "junit"); code != 0 ||
		out != `<testsuite tests="1"><testcase name="ok"/></testsuite>` || !strings.Contains(errOut, "junit evidence sha256:") {
		t.Fatalf("evidence get: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, pub, "evidence", "get", "scorer@1.0.0", "--env", "dev", "--type", "metrics"); code == 0 || !strings.Contains(errOut, "evidence_not_found") {
		t.Fatalf("evidence get of a missing type: %d %q", code, errOut)
	}
	if code, out, errOut := runCLI(t, promoter, "promote", "scorer@1.0.0", "--to", "staging", "--dry-run"); code != 0 || !strings.Contains(out, "dry run") {
		t.Fatalf("dry run: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, promoter, "promote", "scorer@1.0.0", "--to", "staging", "--reason", "green"); code != 0 || !strings.Contains(out, "promoted scorer@1.0.0 into staging") {
		t.Fatalf("promote: %d %s %s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, promoter, "history", "scorer", "--env", "staging"); code != 0 || !strings.Contains(out, "promotion") {
		t.Fatalf("history: %d %s", code, out)
	}
	if code, _, _ := runCLI(t, promoter, "promote", "missing@1.0.0", "--to", "staging"); code != exitError {
		t.Fatalf("promoting a missing version: exit %d, want %d", code, exitError)
	}
}

// TestCLIKeysOwner: approver, promoter and admin keys name their owner, and
// keys list shows who owns and who minted each key.
func TestCLIKeysOwner(t *testing.T) {
	dataDir, _ := startServer(t)
	create := func(args ...string) (int, string, string) {
		return runCLI(t, nil, append([]string{"keys", "create", "--data-dir", dataDir, "--env", "prod"}, args...)...)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr when refused
	}{
		{"approver without owner", []string{"--role", "approver", "--name", "bob"}, exitUsage, "--owner is required"},
		{"admin without owner", []string{"--role", "admin", "--name", "root"}, exitUsage, "--owner is required"},
		{"owner with a space", []string{"--role", "approver", "--name", "bob", "--owner", "bob smith"}, exitError, "invalid_request"},
		{"owner posing as the host", []string{"--role", "approver", "--name", "bob", "--owner", "cli:keys-create"}, exitError, "reserved"},
		{"approver with owner", []string{"--role", "approver", "--name", "bob", "--owner", "bob@example.test"}, exitOK, ""},
		{"admin minted by a named operator", []string{"--role", "admin", "--name", "root", "--owner", "alice@example.test", "--created-by", "ops@example.test"}, exitOK, ""},
		{"publisher without owner", []string{"--role", "publisher", "--name", "ci"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := create(tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d (%s), want %d with %q", code, errOut, tt.code, tt.want)
			}
		})
	}
	code, out, errOut := runCLI(t, nil, "keys", "list", "--data-dir", dataDir, "--env", "prod", "-o", "json")
	if code != exitOK {
		t.Fatalf("keys list: %d %s", code, errOut)
	}
	var listed struct {
		Keys []struct{ Name, Owner, CreatedByOwner string }
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatal(err)
	}
	owners := map[string][2]string{}
	for _, k := range listed.Keys {
		owners[k.Name] = [2]string{k.Owner, k.CreatedByOwner}
	}
	want := map[string][2]string{
		"bob":  {"bob@example.test", "cli:keys-create"},
		"root": {"alice@example.test", "ops@example.test"},
		"ci":   {"", "cli:keys-create"},
	}
	for name, w := range want {
		if owners[name] != w {
			t.Errorf("key %s: owner, minter %q, want %q", name, owners[name], w)
		}
	}
	if _, out, _ := runCLI(t, nil, "keys", "list", "--data-dir", dataDir, "--env", "prod"); !strings.Contains(out, "OWNER") || !strings.Contains(out, "bob@example.test") {
		t.Errorf("keys list table does not show owners:\n%s", out)
	}
}

// TestCLIPushSHA256Sums: files a sha256sum file lists are sent without
// hashing them first, and a digest that does not match the bytes is
// refused by the server with nothing published.
func TestCLIPushSHA256Sums(t *testing.T) {
	dataDir, url := startServer(t)
	code, out, errOut := runCLI(t, nil, "keys", "create", "--data-dir", dataDir, "--env", "dev", "--role", "publisher", "--name", "ci")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, errOut)
	}
	env := map[string]string{"STAGEGATE_URL": url, "STAGEGATE_TOKEN": strings.TrimSpace(out)}
	dir := t.TempDir()
	model, data := filepath.Join(dir, "model.bin"), []byte("weights that CI already hashed")
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	wrong := sha256.Sum256([]byte("other bytes"))
	sums := func(digest [32]byte) string {
		p := filepath.Join(t.TempDir(), "SHA256SUMS")
		if err := os.WriteFile(p, []byte(hex.EncodeToString(digest[:])+"  "+model+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if code, _, errOut := runCLI(t, env, "push", "scorer@1.0.0", "--kind", "model", "--sha256sums", sums(wrong), model); code != exitError || !strings.Contains(errOut, "digest_mismatch") {
		t.Fatalf("push with a wrong listed digest: %d %q, want digest_mismatch", code, errOut)
	}
	code, out, errOut = runCLI(t, env, "push", "scorer@1.0.0", "--kind", "model", "--sha256sums", sums(sum), model)
	if code != 0 || !strings.Contains(out, "published scorer@1.0.0 in dev") {
		t.Fatalf("push with the right digest (nothing may have landed before): %d %q %q", code, out, errOut)
	}
	if !strings.Contains(errOut, hex.EncodeToString(sum[:])) {
		t.Errorf("push output does not name the listed digest: %q", errOut)
	}
}
