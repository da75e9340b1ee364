package ci

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/api"
)

// Step is what one `stagegate ci` step did: the source of its outputs,
// summary and annotations.
type Step struct {
	Name    string `json:"name"`
	Version string `json:"version"` // canonical
	// Environment is where the version was published (publish only).
	Environment string `json:"environment,omitempty"`
	Digest      string `json:"digest,omitempty"` // manifest digest
	// Published is false when identical content was already there.
	Published bool         `json:"published"`
	Evidence  []Evidence   `json:"evidence,omitempty"`
	Promotion *Promotion   `json:"promotion,omitempty"`
	Approval  *Approval    `json:"approval,omitempty"`
	Files     []LocalFile  `json:"-"`
	Retries   int          `json:"retries,omitempty"`
	Notes     []string     `json:"notes,omitempty"`
	extra     []Annotation `json:"-"`
}

// Evidence is one attached document.
type Evidence struct {
	Type    string `json:"type"`
	Digest  string `json:"digest"`
	Created bool   `json:"created"`
	// Automatic marks the provenance the CLI attached by itself.
	Automatic bool `json:"automatic,omitempty"`
}

// Approval is an approval given by the step.
type Approval struct {
	Environment string `json:"environment"`
	Identity    string `json:"identity"`
}

// Promotion outcomes.
const (
	Promoted        = "promoted"
	AlreadyPromoted = "already-promoted"
	DryRun          = "dry-run"
	Refused         = "refused"
)

// Promotion is the promotion a step asked for.
type Promotion struct {
	Target    string          `json:"target"`
	Outcome   string          `json:"outcome"`
	ReleaseID int64           `json:"release,omitempty"`
	GateRunID string          `json:"gateRun,omitempty"`
	Report    *api.GateReport `json:"report,omitempty"`
}

// LocalFile maps a path inside the artifact to the file it came from, so
// an annotation can point at the file in the checkout.
type LocalFile struct {
	Path string // inside the artifact
	Disk string // relative to the workspace when under it
}

// Gate results, the gate-result output.
const (
	GatePassed = "passed"
	GateFailed = "failed"
	GateNone   = "none" // no promotion was asked for
)

// GateResult is passed, failed, or none.
func (s Step) GateResult() string {
	switch {
	case s.Promotion == nil:
		return GateNone
	case s.Promotion.Outcome == Refused:
		return GateFailed
	}
	return GatePassed
}

// Outputs are the step outputs: digest, version, release, gate-result,
// gate-run (empty when not applicable).
func (s Step) Outputs() []Output {
	release, run := "", ""
	if p := s.Promotion; p != nil {
		if p.ReleaseID > 0 {
			release = strconv.FormatInt(p.ReleaseID, 10)
		}
		run = p.GateRunID
	}
	return []Output{{"digest", s.Digest}, {"version", s.Version}, {"release", release},
		{"gate-result", s.GateResult()}, {"gate-run", run}}
}

// Markdown is the job summary: what was published and attached, and the
// gate table of the promotion.
func (s Step) Markdown() string {
	var b strings.Builder
	ref := s.Name + "@" + s.Version
	icon, headline := "✅", "stagegate: "+ref
	switch p := s.Promotion; {
	case p != nil && p.Outcome == Refused:
		icon, headline = "❌", fmt.Sprintf("stagegate: %s refused by %s's gates", ref, p.Target)
	case p != nil && p.Outcome == DryRun:
		headline = fmt.Sprintf("stagegate: %s passes %s's gates (dry run)", ref, p.Target)
	case p != nil:
		headline = fmt.Sprintf("stagegate: %s promoted into %s", ref, p.Target)
	case s.Approval != nil:
		headline = fmt.Sprintf("stagegate: %s approved for %s", ref, s.Approval.Environment)
	case s.Environment != "":
		headline = fmt.Sprintf("stagegate: %s published in %s", ref, s.Environment)
	}
	fmt.Fprintf(&b, "### %s %s\n\n", icon, cell(headline))
	b.WriteString("| | |\n| --- | --- |\n")
	if s.Environment != "" {
		state := "published"
		if !s.Published {
			state = "already published (identical content)"
		}
		fmt.Fprintf(&b, "| %s in `%s` | `%s` |\n", state, cell(s.Environment), cell(s.Digest))
	}
	for _, e := range s.Evidence {
		how := "attached"
		if !e.Created {
			how = "already attached"
		}
		if e.Automatic {
			how += " automatically"
		}
		fmt.Fprintf(&b, "| %s evidence %s | `%s` |\n", cell(e.Type), how, cell(e.Digest))
	}
	if a := s.Approval; a != nil {
		fmt.Fprintf(&b, "| approved for `%s` by | `%s` |\n", cell(a.Environment), cell(a.Identity))
	}
	if p := s.Promotion; p != nil {
		fmt.Fprintf(&b, "| promotion into `%s` | %s |\n", cell(p.Target), p.Outcome)
		if p.ReleaseID > 0 {
			fmt.Fprintf(&b, "| release | %d |\n", p.ReleaseID)
		}
		if p.GateRunID != "" {
			fmt.Fprintf(&b, "| gate run | `%s` |\n", cell(p.GateRunID))
		}
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "| note | %s |\n", cell(n))
	}
	if p := s.Promotion; p != nil && p.Report != nil {
		fmt.Fprintf(&b, "\n#### Gates of `%s`\n\n| Check | Family | Status | Reason |\n| --- | --- | --- | --- |\n", cell(p.Target))
		for _, r := range p.Report.Results {
			status := statusIcon(r.Status) + " " + r.Status
			if !r.Required {
				status += " (advisory)"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", cell(r.Check), cell(r.Family), status, cell(r.Reason))
		}
	}
	b.WriteString("\n")
	return b.String()
}

func statusIcon(status string) string {
	switch status {
	case "passed":
		return "✅"
	case "failed":
		return "❌"
	case "errored":
		return "⚠️"
	}
	return "⏭️"
}

// cell makes text safe inside a Markdown table cell: reasons quote test
// names and file contents, which must neither break the table nor inject
// HTML into the run page.
func cell(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ", "|", `\|`, "&", "&amp;", "<", "&lt;", ">", "&gt;", "`", "'").Replace(s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// maxFileAnnotations bounds the file annotations of one check: GitHub
// shows at most ten errors per step anyway.
const maxFileAnnotations = 10

// Annotations are the workflow commands for every failed or errored check:
// errors for blocking ones, warnings for advisory ones, and one more per
// file a check names (secret-scan findings, pickle members, schema
// violations), pointing at the file in the checkout when the step pushed
// it from there.
func (s Step) Annotations() []Annotation {
	out := append([]Annotation(nil), s.extra...)
	p := s.Promotion
	if p == nil || p.Report == nil {
		return out
	}
	local := map[string]string{}
	for _, f := range s.Files {
		local[f.Path] = f.Disk
	}
	for _, r := range p.Report.Results {
		if r.Status != "failed" && r.Status != "errored" {
			continue
		}
		level := "error"
		if !r.Required {
			level = "warning"
		}
		title := fmt.Sprintf("stagegate %s: %s %s", p.Target, r.Check, r.Status)
		out = append(out, Annotation{Level: level, Title: title, Message: fmt.Sprintf("%s@%s: %s", s.Name, s.Version, r.Reason)})
		for _, fl := range filesIn(r.Details) {
			file := fl.path
			if d, ok := local[file]; ok {
				file = d
			}
			out = append(out, Annotation{Level: level, Title: title, File: file, Line: fl.line,
				Message: fmt.Sprintf("%s (%s inside %s@%s)", r.Reason, fl.path, s.Name, s.Version)})
		}
	}
	return out
}

// Warn adds an annotation of the step's own (a retry, a skipped output).
func (s *Step) Warn(title, message string) {
	s.extra = append(s.extra, Annotation{Level: "warning", Title: title, Message: message})
}

type fileLine struct {
	path string
	line int
}

// filesIn finds the files a check's details name: objects with a "path"
// or "file" string and, optionally, a "line" number. Pickle findings name
// archive members as "file!member"; the file is what the checkout has.
func filesIn(details json.RawMessage) []fileLine {
	if len(details) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(details, &v) != nil {
		return nil
	}
	var out []fileLine
	seen := map[fileLine]bool{}
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 6 || len(out) >= maxFileAnnotations {
			return
		}
		switch t := v.(type) {
		case map[string]any:
			p, _ := t["path"].(string)
			if p == "" {
				p, _ = t["file"].(string)
			}
			if p != "" {
				p, _, _ = strings.Cut(p, "!")
				fl := fileLine{path: p}
				if n, ok := t["line"].(float64); ok && n > 0 && n < 1e9 {
					fl.line = int(n)
				}
				if !seen[fl] {
					seen[fl] = true
					out = append(out, fl)
				}
			}
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				walk(t[k], depth+1)
			}
		case []any:
			for _, e := range t {
				walk(e, depth+1)
			}
		}
	}
	walk(v, 0)
	return out
}
