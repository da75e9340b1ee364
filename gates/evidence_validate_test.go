package gates

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestValidateEvidence(t *testing.T) {
	tests := []struct {
		name, typ, data, wantErr string
	}{
		{"junit ok", "junit", `<testsuite name="s" tests="1"><testcase name="a"/></testsuite>`, ""},
		{"junit broken", "junit", `<testsuite`, "JUnit"},
		{"metrics flat", "metrics", `{"auc": 0.93, "f1": 0.8}`, ""},
		{"metrics nested", "metrics", `{"eval": {"auc": 0.93, "ok": true}}`, ""},
		{"metrics array", "metrics", `{"auc": [1,2]}`, "list"},
		{"metrics not object", "metrics", `[1]`, "JSON object"},
		{"metrics null", "metrics", `null`, "JSON object"},
		{"metrics empty", "metrics", ``, "JSON object"},
		{"metrics surrounding whitespace", "metrics", " \n{\"auc\": 0.9}\r\n\t ", ""},
		// Trailing data would let the validator and a later reader disagree
		// on what the document says, so one JSON value is all there may be.
		{"metrics trailing garbage", "metrics", `{"auc":0.9} trailing garbage`, "exactly one JSON value"},
		{"metrics second object", "metrics", `{"auc":0.9}{"auc":0.1}`, "exactly one JSON value"},
		{"metrics second value after newline", "metrics", "{\"auc\":0.9}\n1", "exactly one JSON value"},
		{"metrics stray closing bracket", "metrics", `{"auc":0.9}]`, "exactly one JSON value"},
		{"metrics unterminated trailer", "metrics", `{"auc":0.9} "x`, "exactly one JSON value"},
		{"metrics trailing NUL", "metrics", "{\"auc\":0.9}\x00", "exactly one JSON value"},
		{"provenance ok", "provenance", `{"repository":"github.com/acme/m","ref":"refs/heads/main","commit":"abc"}`, ""},
		{"provenance missing", "provenance", `{"repository":"x"}`, "commit, ref"},
		{"provenance not JSON", "provenance", `repository=x`, "JSON object"},
		{"provenance surrounding whitespace", "provenance", "\n{\"repository\":\"r\",\"ref\":\"x\",\"commit\":\"c\"}\n", ""},
		{"provenance trailing garbage", "provenance", `{"repository":"r","ref":"x","commit":"c"} trailing garbage`, "exactly one JSON value"},
		{"provenance second object", "provenance", `{"repository":"r","ref":"x","commit":"c"}{"commit":"d"}`, "exactly one JSON value"},
		{"unknown type", "sbom", `{}`, "unknown evidence type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateEvidence(tt.typ, []byte(tt.data))
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("ValidateEvidence = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeJSONDocument(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		trailing bool // want errTrailingData
		syntax   bool // want another error
	}{
		{"object", `{"a":1}`, false, false},
		{"scalar", `1`, false, false},
		{"whitespace around", " \t\r\n{\"a\":1} \t\r\n", false, false},
		{"empty", ``, false, true},
		{"only whitespace", " \n", false, true},
		{"truncated", `{"a":`, false, true},
		{"trailing word", `{"a":1} trailing garbage`, true, false},
		{"second object", `{"a":1}{"a":2}`, true, false},
		{"second scalar", "1 2", true, false},
		{"stray bracket", `{"a":1}]`, true, false},
		{"stray brace", `{"a":1}}`, true, false},
		{"stray comma", `{"a":1},`, true, false},
		{"unterminated string after", `{"a":1} "x`, true, false},
		{"NUL after", "{\"a\":1}\x00", true, false},
		{"BOM after", "{\"a\":1}\ufeff", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			err := decodeJSONDocument([]byte(tt.data), &v)
			if got := errors.Is(err, errTrailingData); got != tt.trailing {
				t.Errorf("decodeJSONDocument(%q) = %v, want trailing-data error: %v", tt.data, err, tt.trailing)
			}
			if got := err != nil && !errors.Is(err, errTrailingData); got != tt.syntax {
				t.Errorf("decodeJSONDocument(%q) = %v, want other error: %v", tt.data, err, tt.syntax)
			}
		})
	}
}

// FuzzValidateEvidence covers the dispatch by type; the per-type readers
// have their own targets (FuzzParseJUnit, FuzzMetricsEvidence,
// FuzzProvenanceEvidence).
func FuzzValidateEvidence(f *testing.F) {
	f.Add("metrics", []byte(`{"a":{"b":1}}`))
	f.Add("provenance", []byte(`{"repository":"r","ref":"x","commit":"c"}`))
	f.Add("junit", []byte(`<testsuites><testsuite><testcase/></testsuite></testsuites>`))
	f.Add("sbom", []byte(`{}`))
	f.Add("Metrics", []byte(`{}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		err := ValidateEvidence(typ, data)
		if !slices.Contains(EvidenceTypes, typ) {
			if err == nil {
				t.Fatalf("accepted unknown evidence type %q", typ)
			}
			return
		}
		// The reason is returned to API clients as one line.
		if err != nil && !oneLine(err.Error()) {
			t.Fatalf("error %q is not one line", err)
		}
		if typ == "junit" {
			if _, jerr := parseJUnit(data); (jerr == nil) != (err == nil) {
				t.Fatalf("ValidateEvidence = %v but parseJUnit = %v", err, jerr)
			}
		}
	})
}
