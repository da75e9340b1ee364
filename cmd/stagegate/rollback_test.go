package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/registry"
)

// TestCLIRollbackExitCodes: a rollback exits 0 when done (or nothing was to
// do), 2 for a bad command line, 1 for a refusal that is not a gate's (a
// version never released, a role that may not), and 3 when a rollback gate
// refused, with the check table.
func TestCLIRollbackExitCodes(t *testing.T) {
	dataDir, url := startServer(t)
	key := func(env, role string) map[string]string {
		_, out, _ := runCLI(t, nil, "keys", "create", "--data-dir", dataDir, "--env", env, "--role", role, "--name", env+"-"+role,
			"--owner", env+"-"+role+"@example.test")
		return map[string]string{"STAGEGATE_URL": url, "STAGEGATE_TOKEN": strings.TrimSpace(out)}
	}
	pub, promoter, reader := key("dev", "publisher"), key("staging", "promoter"), key("staging", "reader")
	src := t.TempDir()
	contents := map[string]string{"1.0.0": "scores one", "1.1.0": "scores two", "1.2.0": "scores three"}
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		file := filepath.Join(src, v, "scores.bin")
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(contents[v]), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := runCLI(t, pub, "push", "scorer@"+v, "--kind", "generic", file); code != exitOK {
			t.Fatalf("push %s: %s", v, errOut)
		}
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if code, out, errOut := runCLI(t, promoter, "promote", "scorer@"+v, "--to", "staging"); code != exitOK || !strings.Contains(out, "release ") {
			t.Fatalf("promote %s: %d %s %s", v, code, out, errOut)
		}
	}

	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		code    int
		stdout  string
		stderr  string
		outJSON bool
	}{
		{"no reason", promoter, []string{"rollback", "scorer", "--env", "staging"}, exitUsage, "", "--reason is required", false},
		{"no environment", promoter, []string{"rollback", "scorer", "--reason", "r"}, exitUsage, "", "--env is required", false},
		{"never released here", promoter, []string{"rollback", "scorer", "--env", "staging", "--to", "1.2.0", "--reason", "r"}, exitError, "",
			"eligible versions (released in staging before, newest first): 1.0.0", false},
		{"never released, json", promoter, []string{"rollback", "scorer", "--env", "staging", "--to", "1.2.0", "--reason", "r", "-o", "json"}, exitError,
			`"code": "not_eligible"`, "", true},
		{"reader", reader, []string{"rollback", "scorer", "--env", "staging", "--reason", "r"}, exitError, "", "forbidden", false},
		{"force without admin", promoter, []string{"rollback", "scorer", "--env", "staging", "--reason", "r", "--force"}, exitError, "", "only an admin", false},
		{"dry run", promoter, []string{"rollback", "scorer", "--env", "staging", "--reason", "r", "--dry-run"}, exitOK, "dry run: every rollback gate passes", "", false},
		{"rollback", promoter, []string{"rollback", "scorer", "--env", "staging", "--reason", "error rate"}, exitOK,
			"rolled back scorer in staging from 1.1.0 to 1.0.0: release 3", "", false},
		{"to the current version", promoter, []string{"rollback", "scorer", "--env", "staging", "--to", "1.0.0", "--reason", "r", "-o", "json"}, exitOK,
			`"outcome": "unchanged"`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if tt.outJSON && !json.Valid([]byte(out)) {
				t.Errorf("-o json printed %q", out)
			}
		})
	}

	// 1.1.0's bytes in staging's bucket are overwritten: its integrity gate
	// refuses the rollback to it, exit 3 with the table.
	sum := sha256.Sum256([]byte(contents["1.1.0"]))
	blobFile := filepath.Join(dataDir, "blobs", "staging", "blobs", "sha256", hex.EncodeToString(sum[:]))
	if err := os.Chmod(blobFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobFile, []byte("tampered!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, promoter, "rollback", "scorer", "--env", "staging", "--to", "1.1.0", "--reason", "r")
	if code != exitGateFailed || !strings.Contains(out, "digest-integrity") || !strings.Contains(out, "FAILED") || !strings.Contains(errOut, "gate_failed") {
		t.Fatalf("refused rollback: exit %d\n%s\n%s", code, out, errOut)
	}

	_, run, _ := strings.Cut(out, "(gate run ")
	run, _, _ = strings.Cut(run, ")")
	if code, out, errOut := runCLI(t, reader, "gate-run", run, "--env", "staging"); code != exitOK ||
		!strings.Contains(out, "(rollback) refused") || !strings.Contains(out, "environment-signature") || !strings.Contains(out, "FAILED") {
		t.Fatalf("gate-run %s: %d\n%s\n%s", run, code, out, errOut)
	}

	code, out, _ = runCLI(t, reader, "history", "scorer", "--env", "staging", "--limit", "2")
	if code != exitOK || !strings.Contains(out, "older releases: --before 2") || strings.Index(out, "\n3 ") > strings.Index(out, "\n2 ") {
		t.Fatalf("history page: %d\n%s", code, out)
	}
	if code, out, _ = runCLI(t, reader, "history", "scorer", "--env", "staging", "--before", "2"); code != exitOK || !strings.Contains(out, "\n1 ") || strings.Contains(out, "\n2 ") {
		t.Fatalf("history --before 2: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, reader, "status", "--env", "staging", "-o", "json")
	var st struct {
		Releases []struct {
			Name, Version string
			Number        int64
		}
	}
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || len(st.Releases) != 1 || st.Releases[0].Version != "1.0.0" || st.Releases[0].Number != 3 {
		t.Fatalf("status -o json: %d %s", code, out)
	}
	if code, out, _ = runCLI(t, reader, "status", "--env", "staging"); code != exitOK || !strings.Contains(out, "scorer") || !strings.Contains(out, "rollback") {
		t.Fatalf("status: %d %s", code, out)
	}
	if code, out, _ = runCLI(t, reader, "status", "--env", "staging", "--at", "2001-01-01"); code != exitOK || !strings.Contains(out, "nothing was released in staging") {
		t.Fatalf("status before the first release: %d %s", code, out)
	}
	if code, _, _ = runCLI(t, reader, "status", "--env", "staging", "--at", "last tuesday"); code != exitUsage {
		t.Fatalf("status with a bad --at: exit %d, want %d", code, exitUsage)
	}
}

func TestReleaseAction(t *testing.T) {
	for _, tc := range []struct {
		r    registry.Release
		want string
	}{
		{registry.Release{Action: registry.ReleasePromotion}, "promotion"},
		{registry.Release{Action: registry.ReleaseRollback}, "rollback"},
		{registry.Release{Action: registry.ReleaseRollback, Forced: true}, "rollback (forced)"},
	} {
		if got := releaseAction(tc.r); got != tc.want {
			t.Errorf("releaseAction(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}
