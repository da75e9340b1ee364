package ci

import (
	"encoding/json"

	"github.com/stagegate/stagegate/gates"
)

// DetectProvenance reads where this CI job builds from: GitHub Actions
// (GITHUB_ACTIONS=true) or GitLab CI (GITLAB_CI=true). ok is false outside
// CI, or when the job does not name its repository, ref and commit.
func DetectProvenance(getenv func(string) string) (gates.Provenance, bool) {
	var p gates.Provenance
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		p = gates.Provenance{
			Repository:        getenv("GITHUB_REPOSITORY"),
			Ref:               getenv("GITHUB_REF"),
			Commit:            getenv("GITHUB_SHA"),
			Builder:           "github-actions",
			WorkflowRef:       getenv("GITHUB_WORKFLOW_REF"),
			RunID:             getenv("GITHUB_RUN_ID"),
			RunAttempt:        getenv("GITHUB_RUN_ATTEMPT"),
			RunnerEnvironment: getenv("RUNNER_ENVIRONMENT"),
			EventName:         getenv("GITHUB_EVENT_NAME"),
			ServerURL:         getenv("GITHUB_SERVER_URL"),
		}
	case getenv("GITLAB_CI") == "true":
		ref := "refs/heads/" + getenv("CI_COMMIT_BRANCH")
		if tag := getenv("CI_COMMIT_TAG"); tag != "" {
			ref = "refs/tags/" + tag
		} else if getenv("CI_COMMIT_BRANCH") == "" {
			ref = getenv("CI_COMMIT_REF_NAME")
		}
		p = gates.Provenance{
			Repository:  getenv("CI_PROJECT_PATH"),
			Ref:         ref,
			Commit:      getenv("CI_COMMIT_SHA"),
			Builder:     "gitlab-ci",
			WorkflowRef: getenv("CI_CONFIG_PATH"),
			RunID:       getenv("CI_PIPELINE_ID"),
			EventName:   getenv("CI_PIPELINE_SOURCE"),
			ServerURL:   getenv("CI_SERVER_URL"),
		}
	default:
		return gates.Provenance{}, false
	}
	if p.Repository == "" || p.Ref == "" || p.Commit == "" {
		return gates.Provenance{}, false
	}
	return p, true
}

// ProvenanceDocument is p as the provenance evidence document.
func ProvenanceDocument(p gates.Provenance) ([]byte, error) {
	return json.Marshal(p)
}
