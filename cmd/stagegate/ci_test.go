package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCIPublish: every flag may come from a STAGEGATE_* variable; a refused
// promotion exits 3 and still reports the outputs; command-line mistakes
// exit 2; a passing run exits 0.
func TestCIPublish(t *testing.T) {
	dataDir, url := startServer(t)
	mint := func(env, role string) string {
		_, out, _ := runCLI(t, nil, "keys", "create", "--data-dir", dataDir, "--env", env, "--role", role, "--name", env+"-"+role,
			"--owner", env+"-"+role+"@example.test")
		return strings.TrimSpace(out)
	}
	src := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	weights := write("weights.onnx", "onnx bytes")
	failing := write("failing.xml", `<testsuite tests="1"><testcase name="auc"><failure/></testcase></testsuite>`)
	passing := write("passing.xml", `<testsuite tests="1"><testcase name="auc"/></testsuite>`)
	out, summary := filepath.Join(src, "github-output"), filepath.Join(src, "summary.md")
	env := map[string]string{
		"STAGEGATE_URL": url, "STAGEGATE_TOKEN": mint("dev", "publisher"), "STAGEGATE_PROMOTE_TOKEN": mint("staging", "promoter"),
		"STAGEGATE_KIND": "model", "STAGEGATE_PROMOTE_TO": "staging", "STAGEGATE_EVIDENCE": "junit=" + failing,
		"STAGEGATE_LABEL": "team=risk\nstage=ci", "STAGEGATE_QUIET": "true",
		"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": out, "GITHUB_STEP_SUMMARY": summary,
	}

	code, stdout, stderr := runCLI(t, env, "ci", "publish", "scorer@1.0.0", weights)
	if code != exitGateFailed {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitGateFailed, stdout, stderr)
	}
	if !strings.Contains(stdout, "::error title=stagegate staging%3A junit failed::scorer@1.0.0: 1 failure(s)") ||
		!strings.Contains(stdout, "promotion of scorer@1.0.0 refused by staging's gates") {
		t.Fatalf("stdout:\n%s", stdout)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "gate-result<<ghadelimiter_") || !strings.Contains(string(b), "\nfailed\n") {
		t.Fatalf("GITHUB_OUTPUT:\n%s", b)
	}
	b, _ = os.ReadFile(summary)
	if !strings.Contains(string(b), "| `junit` | tests | ❌ failed |") {
		t.Fatalf("summary:\n%s", b)
	}

	// Evidence only accumulates, so the failed report stays with 1.0.0: the
	// fixed build is the next version. JSON for machines.
	env["STAGEGATE_EVIDENCE"] = "junit=" + passing
	delete(env, "GITHUB_ACTIONS")
	code, stdout, stderr = runCLI(t, env, "ci", "publish", "scorer@1.0.1", "-o", "json", weights)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var res struct {
		Step struct {
			Published bool `json:"published"`
			Promotion struct {
				Outcome string `json:"outcome"`
			} `json:"promotion"`
		} `json:"step"`
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if !res.Step.Published || res.Step.Promotion.Outcome != "promoted" || res.Outputs["release"] != "1" || res.Outputs["gate-result"] != "passed" {
		t.Fatalf("result %+v", res)
	}

	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"no credential", map[string]string{"STAGEGATE_URL": url}, []string{"ci", "publish", "x@1.0.0", "--kind", "model", weights}},
		{"bad evidence flag", env, []string{"ci", "publish", "x@1.0.0", "--evidence", "junit", weights}},
		{"bad variable", map[string]string{"STAGEGATE_URL": url, "STAGEGATE_TOKEN": "sgk_x", "STAGEGATE_RETRIES": "many"}, []string{"ci", "publish", "x@1.0.0", "--kind", "model", weights}},
		{"oidc outside Actions", map[string]string{"STAGEGATE_URL": url}, []string{"ci", "publish", "x@1.0.0", "--kind", "model", "--oidc-audience", "stagegate-dev", weights}},
		{"no kind", map[string]string{"STAGEGATE_URL": url, "STAGEGATE_TOKEN": "sgk_x"}, []string{"ci", "publish", "x@1.0.0", weights}},
	} {
		if code, _, stderr := runCLI(t, tt.env, tt.args...); code != exitUsage {
			t.Errorf("%s: exit %d, want %d (%s)", tt.name, code, exitUsage, stderr)
		}
	}
	if code, _, stderr := runCLI(t, map[string]string{"STAGEGATE_URL": url, "STAGEGATE_TOKEN": "sgk_unknown", "STAGEGATE_RETRIES": "0"},
		"ci", "publish", "x@1.0.0", "--kind", "model", weights); code != exitError || !strings.Contains(stderr, "unauthenticated") {
		t.Errorf("unknown key: exit %d (%s)", code, stderr)
	}
}
