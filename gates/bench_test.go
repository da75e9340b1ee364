package gates

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/registry"
)

// BenchmarkEvaluateAgentConfig measures a prod gate run for a small agent
// config with every check that applies to agent configs enabled.
func BenchmarkEvaluateAgentConfig(b *testing.B) {
	p, err := LoadPolicy([]byte(`environment: prod
checks:
  - name: promotion-order
  - name: soak-time
    params: {min: 24h}
  - name: freeze-windows
    params:
      windows:
        - {name: weekend, cron: "0 18 * * FRI", duration: 62h, timezone: Europe/Berlin}
  - name: approvals
    params: {count: 1, max_age: 7d}
  - name: signature
  - name: digest-integrity
  - name: size-limits
    params: {max_file_bytes: 1048576, max_total_bytes: 4194304}
  - name: allowed-formats
    params: {extensions: [.yaml, .json, .md]}
  - name: json-schema
    kinds: [agent-config, features]
  - name: secret-scan
  - name: required-evidence
    params: {types: [junit]}
  - name: junit
`))
	if err != nil {
		b.Fatal(err)
	}
	cfg := readFixture(b, "testdata/agent-config/valid/full.yaml")
	s := subject(registry.KindAgentConfig, memFile("agent.yaml", cfg))
	s.Now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) // a Wednesday
	s.Approvals = []Approval{{Actor: "alice", Identity: "alice@example.com", Role: "approver", Environment: "prod", At: s.Now.Add(-time.Hour)}}
	s.Signature = Signature{Status: SignatureTrusted, KeyID: "ci"}
	s.Evidence = []Evidence{memEvidence("junit", readFixture(b, "testdata/junit/pass-testsuite.xml"))}
	eng := Engine{}
	ctx := context.Background()
	if rep := eng.Evaluate(ctx, p, s); !rep.Passed {
		b.Fatalf("gate failed: %+v", rep.Failures())
	}
	b.ReportAllocs()
	for b.Loop() {
		eng.Evaluate(ctx, p, s)
	}
}

// BenchmarkBaselineDecodeAgentConfig is the floor under any gate run of the
// same config: read it once, hash it and decode its YAML. Compare
// BenchmarkEvaluateAgentConfig against it.
func BenchmarkBaselineDecodeAgentConfig(b *testing.B) {
	cfg := readFixture(b, "testdata/agent-config/valid/full.yaml")
	b.ReportAllocs()
	for b.Loop() {
		sum := sha256.Sum256(cfg)
		var doc map[string]any
		if err := yaml.Unmarshal(cfg, &doc); err != nil || sum[0] == 0 && doc == nil {
			b.Fatal(err)
		}
	}
}
