package ci

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/gates"
)

// parseOutputs reads a $GITHUB_OUTPUT file as the runner does.
func parseOutputs(t *testing.T, data string) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		name, delim, ok := strings.Cut(line, "<<")
		if !ok {
			t.Fatalf("line %q is not in the delimiter form", line)
		}
		var val []string
		for sc.Scan() && sc.Text() != delim {
			val = append(val, sc.Text())
		}
		out[name] = strings.Join(val, "\n")
	}
	return out
}

func TestWriteOutputs(t *testing.T) {
	var b bytes.Buffer
	evil := "line1\nrelease=999\nEOF"
	if err := WriteOutputs(&b, []Output{{"digest", "sha256:abc"}, {"gate-run", ""}, {"note", evil}}); err != nil {
		t.Fatal(err)
	}
	got := parseOutputs(t, b.String())
	if got["digest"] != "sha256:abc" || got["gate-run"] != "" || got["note"] != evil || len(got) != 3 {
		t.Fatalf("outputs %q from\n%s", got, b.String())
	}
	if err := WriteOutputs(&b, []Output{{"bad name", "x"}}); err == nil {
		t.Fatal("an output name with a space is refused")
	}
}

func TestAnnotationEscaping(t *testing.T) {
	a := Annotation{Level: "error", Title: "pickle-scan: failed, prod", File: "model/a,b:c.pkl", Line: 3,
		Message: "100% bad\n::error::forged"}
	want := "::error file=model/a%2Cb%3Ac.pkl,line=3,title=pickle-scan%3A failed%2C prod::100%25 bad%0A::error::forged"
	if got := a.String(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := (Annotation{Level: "warning", Message: "m"}).String(); got != "::warning::m" {
		t.Fatalf("got %s", got)
	}
}

func refusedStep() Step {
	secretDetails, _ := json.Marshal(map[string]any{"findings": []map[string]any{
		{"path": "config/agent.yaml", "line": 12, "rule": "aws-access-key"},
		{"path": "config/agent.yaml", "line": 12, "rule": "aws-access-key"}}})
	pickleDetails, _ := json.Marshal(map[string]any{"findings": []map[string]any{{"path": "weights.pt!archive/data.pkl", "module": "os"}}})
	return Step{Name: "support-agent", Version: "1.0.0", Environment: "dev", Digest: "sha256:aa", Published: true,
		Evidence: []Evidence{{Type: "junit", Digest: "sha256:bb", Created: true}, {Type: "provenance", Digest: "sha256:cc", Created: true, Automatic: true}},
		Files:    []LocalFile{{Path: "agent.yaml", Disk: "config/agent.yaml"}},
		Promotion: &Promotion{Target: "staging", Outcome: Refused, GateRunID: "gr_1", Report: &api.GateReport{Environment: "staging", Results: []api.CheckResult{
			{Check: "promotion-order", Family: "process", Status: "passed", Required: true, Reason: "dev -> staging"},
			{Check: "secret-scan", Family: "security", Status: "failed", Required: true, Reason: "1 secret | in <b>agent.yaml</b>", Details: secretDetails},
			{Check: "pickle-scan", Family: "security", Status: "errored", Required: false, Reason: "could not read", Details: pickleDetails},
			{Check: "json-schema", Family: "validation", Status: "skipped", Required: true, Reason: "not applicable"},
		}}}}
}

func TestStepOutputsSummaryAnnotations(t *testing.T) {
	s := refusedStep()
	outs := map[string]string{}
	for _, o := range s.Outputs() {
		outs[o.Name] = o.Value
	}
	if outs["digest"] != "sha256:aa" || outs["version"] != "1.0.0" || outs["release"] != "" || outs["gate-result"] != "failed" || outs["gate-run"] != "gr_1" {
		t.Fatalf("outputs %v", outs)
	}
	md := s.Markdown()
	for _, want := range []string{
		"### ❌ stagegate: support-agent@1.0.0 refused by staging's gates",
		"| Check | Family | Status | Reason |",
		"| `secret-scan` | security | ❌ failed | 1 secret \\| in &lt;b&gt;agent.yaml&lt;/b&gt; |",
		"| `pickle-scan` | security | ⚠️ errored (advisory) | could not read |",
		"| provenance evidence attached automatically | `sha256:cc` |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	var lines []string
	for _, a := range s.Annotations() {
		lines = append(lines, a.String())
	}
	want := []string{
		"::error title=stagegate staging%3A secret-scan failed::support-agent@1.0.0: 1 secret | in <b>agent.yaml</b>",
		"::error file=config/agent.yaml,line=12,title=stagegate staging%3A secret-scan failed::1 secret | in <b>agent.yaml</b> (config/agent.yaml inside support-agent@1.0.0)",
		"::warning title=stagegate staging%3A pickle-scan errored::support-agent@1.0.0: could not read",
		"::warning file=weights.pt,title=stagegate staging%3A pickle-scan errored::could not read (weights.pt inside support-agent@1.0.0)",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("annotations:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	passed := Step{Name: "m", Version: "1.0.0", Promotion: &Promotion{Target: "prod", Outcome: Promoted, ReleaseID: 3, GateRunID: "gr_2"}}
	outs = map[string]string{}
	for _, o := range passed.Outputs() {
		outs[o.Name] = o.Value
	}
	if outs["release"] != "3" || outs["gate-result"] != "passed" || len(passed.Annotations()) != 0 {
		t.Fatalf("passed step outputs %v", outs)
	}
	if (Step{Name: "m", Version: "1"}).GateResult() != GateNone {
		t.Fatal("no promotion: gate-result none")
	}
}

func TestGitHubFiles(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": filepath.Join(dir, "out"), "GITHUB_STEP_SUMMARY": filepath.Join(dir, "sum")}
	var cmds bytes.Buffer
	gh, ok := DetectGitHub(func(k string) string { return env[k] }, &cmds)
	if !ok {
		t.Fatal("not detected")
	}
	s := refusedStep()
	if err := gh.SetOutputs(s.Outputs()); err != nil {
		t.Fatal(err)
	}
	if err := gh.AddSummary(s.Markdown()); err != nil {
		t.Fatal(err)
	}
	if err := gh.Annotate(s.Annotations()); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(env["GITHUB_OUTPUT"])
	if parseOutputs(t, string(out))["gate-result"] != "failed" {
		t.Fatalf("GITHUB_OUTPUT:\n%s", out)
	}
	sum, _ := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	if !strings.Contains(string(sum), "| `secret-scan` |") || strings.Count(cmds.String(), "\n") != 4 {
		t.Fatalf("summary or commands:\n%s\n%s", sum, cmds.String())
	}
	if _, ok := DetectGitHub(func(string) string { return "" }, &cmds); ok {
		t.Fatal("detected outside Actions")
	}
	delete(env, "GITHUB_OUTPUT")
	if err := gh.SetOutputs(s.Outputs()); err == nil || !strings.Contains(err.Error(), "GITHUB_OUTPUT") {
		t.Fatalf("unset GITHUB_OUTPUT: %v", err)
	}
}

func TestDetectProvenance(t *testing.T) {
	gh := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/model", "GITHUB_REF": "refs/heads/main",
		"GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567", "GITHUB_WORKFLOW_REF": "acme/model/.github/workflows/publish.yml@refs/heads/main",
		"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2", "RUNNER_ENVIRONMENT": "github-hosted", "GITHUB_EVENT_NAME": "push", "GITHUB_SERVER_URL": "https://github.com"}
	p, ok := DetectProvenance(func(k string) string { return gh[k] })
	if !ok || p.Repository != "acme/model" || p.RunAttempt != "2" || p.Builder != "github-actions" || p.RunnerEnvironment != "github-hosted" {
		t.Fatalf("%+v %v", p, ok)
	}
	doc, err := ProvenanceDocument(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := gates.ValidateEvidence("provenance", doc); err != nil {
		t.Fatalf("the document the CLI attaches is refused: %v", err)
	}
	if !strings.Contains(string(doc), `"workflowRef":"acme/model/.github/workflows/publish.yml@refs/heads/main"`) {
		t.Fatalf("document %s", doc)
	}
	gl := map[string]string{"GITLAB_CI": "true", "CI_PROJECT_PATH": "acme/model", "CI_COMMIT_TAG": "v1.0.0", "CI_COMMIT_SHA": "abc", "CI_PIPELINE_ID": "7"}
	p, ok = DetectProvenance(func(k string) string { return gl[k] })
	if !ok || p.Ref != "refs/tags/v1.0.0" || p.Builder != "gitlab-ci" {
		t.Fatalf("gitlab %+v %v", p, ok)
	}
	if _, ok := DetectProvenance(func(string) string { return "" }); ok {
		t.Fatal("provenance outside CI")
	}
	delete(gh, "GITHUB_SHA")
	if _, ok := DetectProvenance(func(k string) string { return gh[k] }); ok {
		t.Fatal("provenance without a commit")
	}
}
