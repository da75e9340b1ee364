package gates

import (
	"context"
	"errors"
	"path"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/registry"
)

// provenanceCheck requires provenance evidence naming an allow-listed
// source: repository, ref and, optionally, the workflow that built it.
type provenanceCheck struct {
	repositories []string
	refs         []string
	workflows    []string
	evidenceType string
	maxBytes     int64
}

type provenanceParams struct {
	Repositories []string `yaml:"repositories"`
	Refs         []string `yaml:"refs"`
	Workflows    []string `yaml:"workflows"`
	EvidenceType string   `yaml:"evidence_type"`
	MaxFileBytes int64    `yaml:"max_file_bytes"`
}

func newProvenanceCheck(n *yaml.Node) (Check, error) {
	p := provenanceParams{EvidenceType: registry.EvidenceProvenance, MaxFileBytes: 1 << 20}
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if len(p.Repositories) == 0 {
		return nil, errAt(n, "repositories: list at least one allowed source repository, e.g. [acme/fraud-model] or [\"acme/*\"]")
	}
	for field, patterns := range map[string][]string{"repositories": p.Repositories, "refs": p.Refs, "workflows": p.Workflows} {
		for _, pat := range patterns {
			if _, err := path.Match(pat, ""); err != nil || pat == "" {
				return nil, errAt(n, "%s: %q is not a valid pattern (exact text, or a glob with * ? [...])", field, truncate(pat, 80))
			}
		}
	}
	if !validEvidenceType(p.EvidenceType) {
		return nil, errAt(n, "evidence_type: %q is not an evidence type name", truncate(p.EvidenceType, 40))
	}
	if p.MaxFileBytes <= 0 {
		return nil, errAt(n, "max_file_bytes must be positive")
	}
	return provenanceCheck{repositories: p.Repositories, refs: p.Refs, workflows: p.Workflows,
		evidenceType: p.EvidenceType, maxBytes: p.MaxFileBytes}, nil
}

func (provenanceCheck) Name() string { return "provenance" }

// ProvenanceDetails lists each provenance document and the allow-lists.
type ProvenanceDetails struct {
	Sources      []ProvenanceSource `json:"sources"`
	Repositories []string           `json:"repositories"`
	Refs         []string           `json:"refs,omitempty"`
	Workflows    []string           `json:"workflows,omitempty"`
}

// ProvenanceSource is one provenance document as judged.
type ProvenanceSource struct {
	Repository  string `json:"repository"`
	Ref         string `json:"ref"`
	Commit      string `json:"commit"`
	WorkflowRef string `json:"workflowRef,omitempty"`
	RunID       string `json:"runId,omitempty"`
	Allowed     bool   `json:"allowed"`
	Reason      string `json:"reason,omitempty"` // why not, when not allowed
}

// Run passes only when every provenance document names an allowed source:
// one good document must not launder a second that names another source.
func (c provenanceCheck) Run(ctx context.Context, s *Subject) Result {
	d := ProvenanceDetails{Sources: []ProvenanceSource{}, Repositories: c.repositories, Refs: c.refs, Workflows: c.workflows}
	docs := evidenceOfType(s.Evidence, c.evidenceType)
	if len(docs) == 0 {
		return fail(d, "no %q evidence attached: the source of this version is unknown", c.evidenceType)
	}
	for i, e := range docs {
		b, err := readLimited(ctx, e.Open, c.maxBytes)
		var de *docError
		if errors.As(err, &de) {
			return fail(d, "%s evidence #%d: %s", c.evidenceType, i+1, de.msg)
		}
		if err != nil {
			return errored(d, "%s evidence #%d: %v", c.evidenceType, i+1, err)
		}
		var p Provenance
		if err := decodeJSONDocument(b, &p); err != nil {
			return fail(d, "%s evidence #%d is not a JSON provenance document: %s", c.evidenceType, i+1, truncate(foldLines(err.Error()), 120))
		}
		src := ProvenanceSource{Repository: truncate(printable(p.Repository), 200), Ref: truncate(printable(p.Ref), 200),
			Commit: truncate(printable(p.Commit), 80), WorkflowRef: truncate(printable(p.WorkflowRef), 300), RunID: truncate(printable(p.RunID), 40)}
		src.Allowed, src.Reason = c.judge(p)
		d.Sources = append(d.Sources, src)
	}
	for _, src := range d.Sources {
		if !src.Allowed {
			return fail(d, "provenance %s@%s: %s", src.Repository, src.Ref, src.Reason)
		}
	}
	src := d.Sources[0]
	return pass(d, "built from %s at %s (%s)", src.Repository, src.Ref, truncate(src.Commit, 12))
}

func (c provenanceCheck) judge(p Provenance) (bool, string) {
	switch {
	case strings.TrimSpace(p.Repository) == "" || strings.TrimSpace(p.Ref) == "" || strings.TrimSpace(p.Commit) == "":
		return false, "the document does not name repository, ref and commit"
	case !matchAny(c.repositories, p.Repository):
		return false, "repository " + quoteShort(p.Repository) + " is not in the allow-list " + strings.Join(c.repositories, ", ")
	case len(c.refs) > 0 && !matchAny(c.refs, p.Ref):
		return false, "ref " + quoteShort(p.Ref) + " is not in the allow-list " + strings.Join(c.refs, ", ")
	case len(c.workflows) > 0 && !matchAny(c.workflows, p.WorkflowRef):
		return false, "workflow " + quoteShort(p.WorkflowRef) + " is not in the allow-list " + strings.Join(c.workflows, ", ")
	}
	return true, ""
}

// matchAny matches v against exact or glob patterns; '*' stays within one
// '/'-separated segment, so "refs/heads/*" is not "refs/heads/a/b".
func matchAny(patterns []string, v string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok {
			return true
		}
	}
	return false
}

func quoteShort(s string) string { return `"` + truncate(printable(s), 120) + `"` }
