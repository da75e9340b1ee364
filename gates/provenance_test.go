package gates

import (
	"context"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/registry"
)

func provenanceDoc(repo, ref, workflow string) Evidence {
	doc := `{"repository":"` + repo + `","ref":"` + ref + `","commit":"0123456789abcdef0123456789abcdef01234567"`
	if workflow != "" {
		doc += `,"workflowRef":"` + workflow + `","runId":"42","runAttempt":"1","runnerEnvironment":"github-hosted","builder":"github-actions"`
	}
	return memEvidence("provenance", []byte(doc+"}"))
}

func TestProvenance(t *testing.T) {
	const wf = "acme/model/.github/workflows/publish.yml@refs/heads/main"
	repoOnly := buildCheck(t, "provenance", "repositories: [acme/model]")
	strict := buildCheck(t, "provenance", `repositories: ["acme/*"]
refs: [refs/heads/main, "refs/tags/v*"]
workflows: ["acme/*/.github/workflows/publish.yml@refs/*/*"]`)
	tests := []struct {
		name     string
		check    Check
		evidence []Evidence
		want     Status
		reason   string
	}{
		{"allowed repository", repoOnly, []Evidence{provenanceDoc("acme/model", "refs/heads/feature", "")}, Passed, "built from acme/model at refs/heads/feature"},
		{"other repository", repoOnly, []Evidence{provenanceDoc("evil/model", "refs/heads/main", "")}, Failed, `repository "evil/model" is not in the allow-list`},
		{"no provenance", repoOnly, []Evidence{memEvidence("junit", []byte("<testsuite/>"))}, Failed, "no \"provenance\" evidence"},
		{"glob repository, allowed ref and workflow", strict, []Evidence{provenanceDoc("acme/model", "refs/tags/v1.4.0", wf)}, Passed, ""},
		{"ref not allowed", strict, []Evidence{provenanceDoc("acme/model", "refs/heads/feature", wf)}, Failed, `ref "refs/heads/feature"`},
		{"glob does not cross segments", strict, []Evidence{provenanceDoc("acme/model", "refs/tags/v1/evil", wf)}, Failed, "ref"},
		{"workflow missing", strict, []Evidence{provenanceDoc("acme/model", "refs/heads/main", "")}, Failed, "workflow"},
		{"a second document cannot launder a bad one", repoOnly, []Evidence{provenanceDoc("acme/model", "refs/heads/main", ""), provenanceDoc("evil/model", "refs/heads/main", "")}, Failed, "evil/model"},
		{"not JSON", repoOnly, []Evidence{memEvidence("provenance", []byte("{"))}, Failed, "not a JSON provenance document"},
		{"incomplete", repoOnly, []Evidence{memEvidence("provenance", []byte(`{"repository":"acme/model"}`))}, Failed, "repository, ref and commit"},
		{"unreadable", repoOnly, []Evidence{{Type: "provenance", Open: failingOpener}}, Errored, "storage unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := subject(registry.KindModel)
			s.Evidence = tt.evidence
			r := tt.check.Run(context.Background(), s)
			wantStatus(t, r, tt.want)
			if !strings.Contains(r.Reason, tt.reason) {
				t.Fatalf("reason %q does not contain %q", r.Reason, tt.reason)
			}
		})
	}
}

func TestProvenanceParams(t *testing.T) {
	for _, params := range []string{
		"",
		"repositories: []",
		`repositories: ["acme/[x"]`,
		"repositories: [a/b]\nrefs: [\"\"]",
		"repositories: [a/b]\nmax_file_bytes: 0",
		"repositories: [a/b]\nbranches: [main]",
	} {
		doc := "environment: prod\nchecks:\n  - name: provenance\n    params:\n"
		for _, l := range strings.Split(params, "\n") {
			doc += "      " + l + "\n"
		}
		if params == "" {
			doc = "environment: prod\nchecks:\n  - name: provenance\n"
		}
		if _, err := LoadPolicy([]byte(doc)); err == nil {
			t.Errorf("params %q accepted", params)
		}
	}
}

// The document the CLI writes inside CI is valid provenance evidence.
func TestProvenanceDocumentValidates(t *testing.T) {
	e := provenanceDoc("acme/model", "refs/heads/main", "acme/model/.github/workflows/p.yml@refs/heads/main")
	b, _ := readLimited(context.Background(), e.Open, 1<<20)
	if err := ValidateEvidence("provenance", b); err != nil {
		t.Fatal(err)
	}
}
