package gates

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/registry"
)

// TestDefaultProdPolicyEndToEnd runs the embedded prod policy over a
// realistic subject of each kind, then breaks each one in a typical way.
func TestDefaultProdPolicyEndToEnd(t *testing.T) {
	p, err := DefaultPolicy("prod")
	if err != nil {
		t.Fatal(err)
	}
	junitXML := readFixture(t, filepath.Join("testdata", "junit", "pass-testsuite.xml"))
	ready := func(s *Subject) *Subject {
		s.Approvals = []Approval{{Actor: "alice", Identity: "alice@example.com", Role: "approver", Environment: "prod", At: testNow.Add(-time.Hour)}}
		return s
	}
	model := func() *Subject {
		s := ready(subject(registry.KindModel,
			memFile("model.safetensors", stFile(`{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}`, 8)),
			memFile("config.json", []byte(`{"hidden_size": 4}`))))
		s.Evidence = []Evidence{memEvidence("junit", junitXML)}
		return s
	}
	agent := func() *Subject {
		return ready(subject(registry.KindAgentConfig, memFile("agent.yaml", readFixture(t, filepath.Join("testdata", "agent-config", "valid", "full.yaml")))))
	}
	schema := func() *Subject { return ready(compatSubject(t, "doc-only")) }

	tests := []struct {
		name    string
		subject *Subject
		failing []string // checks expected to block
	}{
		{"model passes", model(), nil},
		{"agent config passes", agent(), nil},
		{"schema passes", schema(), nil},
		{"model without tests", func() *Subject { s := model(); s.Evidence = nil; return s }(), []string{"required-evidence", "junit"}},
		{"model with pickle", func() *Subject {
			s := model()
			s.Files = append(s.Files, memFile("extra.pkl", []byte(evilProto0)))
			return s
		}(), []string{"allowed-formats", "pickle-scan"}},
		{"agent config with a secret", func() *Subject {
			s := agent()
			s.Files = []File{memFile("agent.yaml", []byte("model: m\nsystem_prompt: p\nmetadata:\n  key: "+fakeSecrets()["@@AWS@@"]+"\n"))}
			return s
		}(), []string{"secret-scan"}},
		{"breaking schema", func() *Subject { return ready(compatSubject(t, "required-added")) }(), []string{"schema-compat"}},
		{"skipping staging without approval", func() *Subject { s := agent(); s.Source = "dev"; s.Approvals = nil; return s }(), []string{"promotion-order", "approvals"}},
		{"untrusted signature", func() *Subject { s := agent(); s.Signature = Signature{Status: SignatureUntrusted}; return s }(), []string{"signature"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Engine{}.Evaluate(context.Background(), p, tt.subject)
			var blocking []string
			for _, r := range rep.Failures() {
				blocking = append(blocking, r.Check)
			}
			for _, r := range rep.Results {
				t.Logf("%-18s %-8s %s", r.Check, r.Status, r.Reason)
			}
			if strings.Join(blocking, ",") != strings.Join(tt.failing, ",") {
				for _, r := range rep.Results {
					t.Logf("%-18s %-8s %s", r.Check, r.Status, r.Reason)
				}
				t.Fatalf("blocking checks %v, want %v", blocking, tt.failing)
			}
			if rep.Passed != (len(tt.failing) == 0) {
				t.Errorf("Passed = %v", rep.Passed)
			}
			if len(rep.Results) != len(p.Checks) {
				t.Errorf("%d results for %d policy entries", len(rep.Results), len(p.Checks))
			}
			if _, err := json.Marshal(rep); err != nil {
				t.Errorf("report does not encode: %v", err)
			}
		})
	}
}
