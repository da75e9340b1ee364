package gates

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/stagegate/stagegate/registry"
)

// MaxEvidenceSize bounds one evidence document: reports and metrics are
// small, and the checks read them whole.
const MaxEvidenceSize = 16 << 20

// EvidenceTypes lists the evidence types ValidateEvidence knows.
var EvidenceTypes = []string{registry.EvidenceJUnit, registry.EvidenceMetrics, registry.EvidenceProvenance}

// Provenance is the provenance evidence document: where the artifact was
// built from. Repository, ref and commit are required; `stagegate ci`
// fills the rest inside a CI job.
type Provenance struct {
	Repository string `json:"repository"` // e.g. acme/fraud-model
	Ref        string `json:"ref"`        // e.g. refs/heads/main
	Commit     string `json:"commit"`
	// Builder names the CI system, e.g. github-actions.
	Builder string `json:"builder,omitempty"`
	// WorkflowRef is the workflow file and ref that built it, e.g.
	// acme/fraud-model/.github/workflows/publish.yml@refs/heads/main.
	WorkflowRef       string `json:"workflowRef,omitempty"`
	RunID             string `json:"runId,omitempty"`
	RunAttempt        string `json:"runAttempt,omitempty"`
	RunnerEnvironment string `json:"runnerEnvironment,omitempty"` // github-hosted or self-hosted
	EventName         string `json:"eventName,omitempty"`
	ServerURL         string `json:"serverUrl,omitempty"`
}

// ValidateEvidence checks an evidence document when it is attached, so a
// malformed report is refused at the door instead of failing a gate later.
// JUnit must parse; metrics must be a JSON object (flat or nested) whose
// leaves are numbers, booleans or strings; provenance must name the source
// repository, ref and commit. Metrics and provenance are exactly one JSON
// value: data after it is refused. It returns a one-line reason on failure.
func ValidateEvidence(typ string, data []byte) error {
	if len(data) > MaxEvidenceSize {
		return fmt.Errorf("%s evidence is larger than %d bytes", typ, MaxEvidenceSize)
	}
	switch typ {
	case registry.EvidenceJUnit:
		_, err := parseJUnit(data)
		return err
	case registry.EvidenceMetrics:
		m, err := parseMetrics(data)
		switch {
		case errors.Is(err, errTrailingData):
			return fmt.Errorf("metrics evidence must be exactly one JSON value: %w", err)
		case err != nil:
			return fmt.Errorf("metrics evidence must be a JSON object")
		}
		return checkMetricLeaves("", m, 0)
	case registry.EvidenceProvenance:
		var p Provenance
		err := decodeJSONDocument(data, &p)
		switch {
		case errors.Is(err, errTrailingData):
			return fmt.Errorf("provenance evidence must be exactly one JSON value: %w", err)
		case err != nil:
			return fmt.Errorf("provenance evidence must be a JSON object: %s", truncate(err.Error(), 120))
		}
		var missing []string
		for field, v := range map[string]string{"repository": p.Repository, "ref": p.Ref, "commit": p.Commit} {
			if strings.TrimSpace(v) == "" {
				missing = append(missing, field)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return fmt.Errorf("provenance evidence lacks %s", strings.Join(missing, ", "))
		}
		return nil
	}
	return fmt.Errorf("unknown evidence type %q (want %s)", truncate(typ, 40), strings.Join(EvidenceTypes, ", "))
}

// errTrailingData marks a document that holds more than its one JSON
// value. Decoders that stop after the first value would read such a
// document differently from ones that reject it; refusing it leaves
// nothing for them to disagree on.
var errTrailingData = errors.New("trailing data")

// errNotJSONObject marks a metrics document that is not a JSON object.
var errNotJSONObject = errors.New("not a JSON object")

// decodeJSONDocument decodes data, which must hold exactly one JSON value
// (whitespace around it is fine), into v. Numbers decode as json.Number
// when v holds interfaces, so no digits are lost before a check looks at
// them. It is the one strict reader of JSON evidence: attach-time
// validation and the checks that later read stored evidence share it, so
// what was accepted at the door is what a gate evaluates.
func decodeJSONDocument(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	end := dec.InputOffset()
	// Token, unlike More, also reports a stray ']' or '}' after the value.
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w after the JSON value at byte %d", errTrailingData, end)
	}
	return nil
}

// parseMetrics reads a metrics document: exactly one JSON object. Numbers
// are json.Number. Errors wrap errTrailingData or errNotJSONObject.
func parseMetrics(data []byte) (map[string]any, error) {
	var m map[string]any
	err := decodeJSONDocument(data, &m)
	if errors.Is(err, errTrailingData) {
		return nil, err
	}
	if err != nil || m == nil {
		return nil, errNotJSONObject
	}
	return m, nil
}

func checkMetricLeaves(prefix string, m map[string]any, depth int) error {
	if depth > 16 {
		return fmt.Errorf("metrics evidence is nested deeper than 16 levels")
	}
	for k, v := range m {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		switch x := v.(type) {
		case json.Number, bool, string, nil:
		case map[string]any:
			if err := checkMetricLeaves(path, x, depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("metric %q is a list; metrics are numbers, booleans or strings, nested in objects", truncate(path, 80))
		}
	}
	return nil
}
