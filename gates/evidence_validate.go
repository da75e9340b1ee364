package gates

import (
	"bytes"
	"encoding/json"
	"fmt"
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
// built from.
type Provenance struct {
	Repository string `json:"repository"`
	Ref        string `json:"ref"`
	Commit     string `json:"commit"`
}

// ValidateEvidence checks an evidence document when it is attached, so a
// malformed report is refused at the door instead of failing a gate later.
// JUnit must parse; metrics must be a JSON object (flat or nested) whose
// leaves are numbers, booleans or strings; provenance must name the source
// repository, ref and commit. It returns a one-line reason on failure.
func ValidateEvidence(typ string, data []byte) error {
	if len(data) > MaxEvidenceSize {
		return fmt.Errorf("%s evidence is larger than %d bytes", typ, MaxEvidenceSize)
	}
	switch typ {
	case registry.EvidenceJUnit:
		_, err := parseJUnit(data)
		return err
	case registry.EvidenceMetrics:
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil || m == nil {
			return fmt.Errorf("metrics evidence must be a JSON object")
		}
		return checkMetricLeaves("", m, 0)
	case registry.EvidenceProvenance:
		var p Provenance
		if err := json.Unmarshal(data, &p); err != nil {
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
