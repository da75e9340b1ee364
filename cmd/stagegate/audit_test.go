package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/stagegate/stagegate/internal/signing/signingtest"
)

// TestCLIAudit: audit paging, export, checkpoint and verify, and verify
// reporting an event edited in the database.
func TestCLIAudit(t *testing.T) {
	dataDir, url := startServer(t)
	mint := func(role string) map[string]string {
		code, out, errOut := runCLI(t, nil, "keys", "create", "--data-dir", dataDir, "--env", "dev", "--role", role, "--name", role)
		if code != 0 {
			t.Fatalf("keys create: %d %s", code, errOut)
		}
		return map[string]string{"STAGEGATE_URL": url, "STAGEGATE_TOKEN": strings.TrimSpace(out)}
	}
	pub, reader := mint("publisher"), mint("reader")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "w.bin"), []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"ranker@1.0.0", "ranker@1.1.0", "ranker-v2@1.0.0"} {
		if code, _, errOut := runCLI(t, pub, "push", ref, "--kind", "model", src); code != 0 {
			t.Fatalf("push %s: %s", ref, errOut)
		}
	}

	code, out, errOut := runCLI(t, reader, "audit", "--env", "dev", "--name", "ranker", "--action", "artifact.publish", "--limit", "1")
	if code != 0 || strings.Count(out, "ranker@") != 1 || !strings.Contains(out, "ranker@1.1.0") || !strings.HasPrefix(errOut, "more: --before ") {
		t.Fatalf("audit page 1: %d %q %q", code, out, errOut)
	}
	before := strings.TrimSpace(strings.TrimPrefix(errOut, "more: --before "))
	code, out, _ = runCLI(t, reader, "audit", "--env", "dev", "--name", "ranker", "--action", "artifact.publish", "--limit", "1", "--before", before)
	if code != 0 || !strings.Contains(out, "ranker@1.0.0") {
		t.Fatalf("audit page 2: %d %q", code, out)
	}

	code, out, errOut = runCLI(t, reader, "audit", "export", "--env", "dev", "--name", "ranker")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(strings.Split(out, "\n")[0], `"target":"ranker@1.0.0"`) {
		t.Fatalf("audit export: %d %q %q", code, out, errOut)
	}
	// Two keys and three publishes: push sends a small file inside the
	// publish, not as an upload of its own (issue #18).
	code, all, _ := runCLI(t, reader, "audit", "export", "--env", "dev")
	if code != 0 || strings.Count(all, "\n") != 5 || strings.Contains(all, "blob.upload") {
		t.Fatalf("audit export of everything: %d %q", code, all)
	}

	kept := t.TempDir()
	if code, out, errOut := runCLI(t, reader, "audit", "checkpoint", "--env", "dev", "--dir", kept); code != 0 || !strings.Contains(out, "checkpoint of dev:") {
		t.Fatalf("audit checkpoint: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, reader, "audit", "checkpoint", "--env", "dev", "--dir", kept); code != exitError || !strings.Contains(errOut, "exists") {
		t.Fatalf("audit checkpoint over a kept one: %d %q", code, errOut)
	}
	if code, out, errOut := runCLI(t, reader, "audit", "verify", "--env", "dev", "--checkpoint", filepath.Join(kept, "checkpoint.json")); code != 0 ||
		strings.Count(out, "ok  ") != 3 || strings.Contains(out, "FAIL") {
		t.Fatalf("audit verify: %d %q %q", code, out, errOut)
	}
	prodKey := filepath.Join(t.TempDir(), "prod.pub")
	if err := os.WriteFile(prodKey, signingtest.Signers(t)["prod"].PublicKeyPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, reader, "audit", "verify", "--env", "dev", "--key", prodKey); code != exitError ||
		!strings.Contains(out, "FAIL  current checkpoint") || !strings.Contains(out, "ok    hash chain") {
		t.Fatalf("audit verify with another environment's key: %d %q", code, out)
	}

	// Edited in the database, by someone who could drop the trigger.
	raw, err := sql.Open("sqlite", filepath.Join(dataDir, "stagegate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	for _, stmt := range []string{`DROP TRIGGER audit_events_no_update`,
		`UPDATE audit_events SET actor = 'someone-else' WHERE environment = 'dev' AND seq = 3`} {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	code, out, errOut = runCLI(t, reader, "audit", "verify", "--env", "dev")
	if code != exitError || !strings.Contains(out, "FAIL  hash chain") || !strings.Contains(out, "(seq 3): hash:") ||
		!strings.Contains(errOut, "audit verification failed") {
		t.Fatalf("audit verify of an edited trail: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCLI(t, reader, "audit", "verify", "--env", "dev", "-o", "json"); code != exitError ||
		!strings.Contains(out, `"verified": false`) || !strings.Contains(out, `"problem": "hash"`) {
		t.Fatalf("audit verify -o json: %d %q", code, out)
	}
}
