package gates

import (
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
		{"provenance ok", "provenance", `{"repository":"github.com/acme/m","ref":"refs/heads/main","commit":"abc"}`, ""},
		{"provenance missing", "provenance", `{"repository":"x"}`, "commit, ref"},
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

func FuzzValidateEvidence(f *testing.F) {
	f.Add("metrics", []byte(`{"a":{"b":1}}`))
	f.Add("provenance", []byte(`{"repository":"r","ref":"x","commit":"c"}`))
	f.Add("junit", []byte(`<testsuites><testsuite><testcase/></testsuite></testsuites>`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		_ = ValidateEvidence(typ, data) // must not panic
	})
}
