package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIHygiene runs gc, scrub and reindex on the embedded default the
// way an operator would on the server host.
func TestCLIHygiene(t *testing.T) {
	t.Parallel()
	dataDir, url := startServer(t)
	code, out, errOut := runCLI(t, nil, "keys", "create", "--data-dir", dataDir, "--env", "dev", "--role", "publisher", "--name", "ci")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, errOut)
	}
	env := map[string]string{"STAGEGATE_URL": url, "STAGEGATE_TOKEN": strings.TrimSpace(out)}
	src := t.TempDir()
	weights := filepath.Join(src, "weights.bin")
	if err := os.WriteFile(weights, []byte(strings.Repeat("w", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, env, "push", "ranker@1.0.0", "--kind", "model", src); code != 0 {
		t.Fatalf("push: %d %s", code, errOut)
	}
	// A refused push leaves an orphan file blob, manifest and signature.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "weights.bin"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCLI(t, env, "push", "ranker@1.0.0", "--kind", "model", other); code != exitError {
		t.Fatalf("conflicting push: exit %d", code)
	}
	blobs := filepath.Join(dataDir, "blobs", "dev")
	old := time.Now().Add(-48 * time.Hour)
	if err := filepath.WalkDir(blobs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	}); err != nil {
		t.Fatal(err)
	}
	host := []string{"--data-dir", dataDir, "--env", "dev"}

	t.Run("gc", func(t *testing.T) {
		if code, _, errOut := runCLI(t, nil, append([]string{"gc", "--grace", "5m"}, host...)...); code != exitUsage || !strings.Contains(errOut, "at least 1h") {
			t.Fatalf("gc --grace 5m: %d %q", code, errOut)
		}
		if code, _, _ := runCLI(t, nil, "gc", "--data-dir", dataDir, "--env", "qa"); code != exitUsage {
			t.Fatalf("gc of an unknown environment: exit %d", code)
		}
		code, out, errOut := runCLI(t, nil, append([]string{"gc", "--dry-run"}, host...)...)
		// A refused publish's file, manifest and its two signatures (over
		// the manifest, and cosign's).
		if code != 0 || strings.Count("\n"+out, "\nwould remove ") != 4 || !strings.Contains(out, "gc dev: would remove 4 objects") {
			t.Fatalf("gc --dry-run: %d %q %q", code, out, errOut)
		}
		code, out, errOut = runCLI(t, nil, append([]string{"gc", "-o", "json"}, host...)...)
		var res struct {
			DryRun  bool
			Removed []struct {
				Key    string
				Family string
				Size   int64
			}
			Result struct{ Removed, Failed int }
		}
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.DryRun || len(res.Removed) != 4 || res.Result.Removed != 4 {
			t.Fatalf("gc -o json: %d %q %q", code, out, errOut)
		}
		for _, r := range res.Removed {
			if _, err := os.Stat(filepath.Join(blobs, filepath.FromSlash(r.Key))); !os.IsNotExist(err) {
				t.Errorf("%s still there: %v", r.Key, err)
			}
		}
		if code, out, _ := runCLI(t, nil, append([]string{"gc"}, host...)...); code != 0 || !strings.Contains(out, "removed 0 objects, 0 bytes") {
			t.Fatalf("second gc: %d %q", code, out)
		}
		if code, out, errOut := runCLI(t, env, "pull", "ranker@1.0.0", "--env", "dev", "-o", t.TempDir()); code != 0 {
			t.Fatalf("pull after gc: %d %q %q", code, out, errOut)
		}
	})

	t.Run("scrub", func(t *testing.T) {
		if code, out, errOut := runCLI(t, nil, append([]string{"scrub"}, host...)...); code != 0 || !strings.Contains(out, "0 corrupt, 0 missing") {
			t.Fatalf("scrub: %d %q %q", code, out, errOut)
		}
		// Damage the weights on disk.
		var victim string
		_ = filepath.WalkDir(filepath.Join(blobs, "blobs"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, _ := d.Info(); info.Size() == 4096 {
					victim = p
				}
			}
			return nil
		})
		if victim == "" {
			t.Fatal("weights blob not found")
		}
		if err := os.WriteFile(victim, []byte(strings.Repeat("x", 4096)), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, nil, append([]string{"scrub"}, host...)...)
		if code != exitError || !strings.Contains(out, "corrupt ") || !strings.Contains(out, "1 corrupt") {
			t.Fatalf("scrub of a damaged bucket: %d %q %q", code, out, errOut)
		}
		code, out, errOut = runCLI(t, nil, append([]string{"scrub", "--repair-from", weights, "-o", "json"}, host...)...)
		if code != 0 || !strings.Contains(out, `"problem": "repaired"`) || !strings.Contains(out, `"ok": true`) {
			t.Fatalf("scrub --repair-from: %d %q %q", code, out, errOut)
		}
		if code, _, errOut := runCLI(t, env, "verify", "ranker@1.0.0", "--env", "dev"); code != 0 {
			t.Fatalf("verify after repair: %d %q", code, errOut)
		}
	})

	t.Run("reindex", func(t *testing.T) {
		// A fresh database stands for a lost one.
		lost := map[string]string{"STAGEGATE_DATABASE_DSN": filepath.Join(t.TempDir(), "rebuilt.db")}
		// The test server signs with shared test keys, not the data dir's
		// (which reindex loads, as serve would): its signatures do not
		// verify, and nothing is restored from them.
		code, out, errOut := runCLI(t, lost, append([]string{"reindex"}, host...)...)
		if code != exitError || !strings.Contains(out, "unreadable") || !strings.Contains(out, "signatures verifies") {
			t.Fatalf("reindex with foreign signatures: %d %q %q", code, out, errOut)
		}
		code, out, errOut = runCLI(t, lost, append([]string{"reindex", "--no-verify"}, host...)...)
		if code != 0 || !strings.Contains(out, "added ") || !strings.Contains(out, "ranker@1.0.0 sha256:") || !strings.Contains(out, "1 added, 0 already present") {
			t.Fatalf("reindex: %d %q %q", code, out, errOut)
		}
		if code, out, _ := runCLI(t, lost, append([]string{"reindex", "--no-verify", "-o", "json"}, host...)...); code != 0 || !strings.Contains(out, `"present": 1`) {
			t.Fatalf("second reindex: %d %q", code, out)
		}
		// The live database already has it.
		if code, out, _ := runCLI(t, nil, append([]string{"reindex", "--no-verify"}, host...)...); code != 0 || !strings.Contains(out, "present") {
			t.Fatalf("reindex over the live index: %d %q", code, out)
		}
	})
}
