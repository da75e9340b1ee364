package gates

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagegate/stagegate/registry"
)

func TestDefaultPolicies(t *testing.T) {
	for _, env := range []string{"staging", "prod"} {
		t.Run(env, func(t *testing.T) {
			p, err := DefaultPolicy(env)
			if err != nil {
				t.Fatal(err)
			}
			if p.Environment != env || !strings.HasPrefix(p.Digest, "sha256:") {
				t.Fatalf("environment %q digest %q", p.Environment, p.Digest)
			}
			var names []string
			for _, c := range p.Checks {
				names = append(names, c.Check.Name())
			}
			want := []string{"promotion-order", "digest-integrity", "json-schema", "secret-scan", "allowed-formats",
				"safetensors", "pickle-scan", "required-evidence", "junit", "schema-compat"}
			if env == "prod" {
				want = append(want[:2], append([]string{"signature", "approvals"}, want[2:]...)...)
			}
			if diff := cmp.Diff(want, names); diff != "" {
				t.Errorf("checks (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := DefaultPolicy("dev"); err == nil {
		t.Error("dev has no default policy")
	}
	if _, err := DefaultPolicy("../policies/prod"); err == nil {
		t.Error("path-like environment must be refused")
	}
}

func TestLoadPolicyAppliesKindsAndRequired(t *testing.T) {
	p, err := LoadPolicy([]byte(`environment: staging
checks:
  - name: json-schema
    kinds: [agent-config]
  - name: size-limits
    required: false
    params: {max_file_bytes: 10}
`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Checks[0].AppliesTo(registry.KindAgentConfig) || p.Checks[0].AppliesTo(registry.KindModel) {
		t.Error("kinds not applied")
	}
	if !p.Checks[0].Required || p.Checks[1].Required {
		t.Error("required flag wrong")
	}
	if p.Checks[0].Line != 3 || p.Checks[1].Line != 5 {
		t.Errorf("lines %d %d", p.Checks[0].Line, p.Checks[1].Line)
	}
	if p.Digest != Digest([]byte(`environment: staging
checks:
  - name: json-schema
    kinds: [agent-config]
  - name: size-limits
    required: false
    params: {max_file_bytes: 10}
`)) {
		t.Error("digest is not sha256 of the bytes")
	}
}

func TestLoadPolicyRefusals(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		line     int
		check    string
		contains string
	}{
		{"empty", "", 0, "", "empty document"},
		{"not yaml", "environment: [", 1, "", ""},
		{"unknown top-level key", "environment: prod\nchecks:\n  - name: promotion-order\nextra: 1\n", 4, "", `unknown field "extra"`},
		{"no environment", "checks:\n  - name: promotion-order\n", 1, "", "environment is required"},
		{"no checks", "environment: prod\n", 1, "", "at least one check"},
		{"unknown check", "environment: prod\nchecks:\n  - name: promotion-order\n  - name: vibe-check\n", 4, "vibe-check", "unknown check name"},
		{"missing name", "environment: prod\nchecks:\n  - kinds: [model]\n", 3, "", "name is required"},
		{"unknown kind", "environment: prod\nchecks:\n  - name: junit\n    kinds: [modle]\n", 3, "junit", "unknown artifact kind"},
		{"unknown entry key", "environment: prod\nchecks:\n  - name: junit\n    parms: {}\n", 4, "", `unknown field "parms"`},
		{"unknown param", "environment: prod\nchecks:\n  - name: junit\n    params:\n      min_test: 3\n", 5, "junit", `unknown field "min_test"`},
		{"param on paramless check", "environment: prod\nchecks:\n  - name: promotion-order\n    params:\n      strict: true\n", 5, "promotion-order", `unknown field "strict"`},
		{"bad param type", "environment: prod\nchecks:\n  - name: junit\n    params:\n      min_tests: many\n", 5, "junit", "cannot unmarshal"},
		{"bad duration", "environment: prod\nchecks:\n  - name: soak-time\n    params:\n      min: soon\n", 5, "soak-time", "invalid duration"},
		{"missing required param", "environment: prod\nchecks:\n  - name: soak-time\n", 3, "soak-time", "min"},
		{"bad mode", "environment: prod\nchecks:\n  - name: schema-compat\n    params:\n      mode: SIDEWAYS\n", 5, "schema-compat", "BACKWARD"},
		{"bad timezone", "environment: prod\nchecks:\n  - name: freeze-windows\n    params:\n      windows:\n        - name: x\n          cron: \"0 18 * * FRI\"\n          duration: 60h\n          timezone: Mars/Olympus\n", 6, "freeze-windows", "unknown timezone"},
		{"bad cron", "environment: prod\nchecks:\n  - name: freeze-windows\n    params:\n      windows:\n        - name: x\n          cron: \"61 * * * *\"\n          duration: 1h\n", 6, "freeze-windows", "cron"},
		{"duplicate", "environment: prod\nchecks:\n  - name: junit\n  - name: junit\n    kinds: [model]\n", 4, "junit", "already listed at line 3"},
		{"two documents", "environment: prod\nchecks:\n  - name: junit\n---\nenvironment: x\n", 4, "", "more than one"},
		{"metric rule syntax error", "environment: prod\nchecks:\n  - name: metric-rules\n    params:\n      rules:\n        - name: auc\n          expr: \"metrics.auc >= \"\n", 7, "metric-rules", `rule "auc"`},
		{"metric rule without name", "environment: prod\nchecks:\n  - name: metric-rules\n    params:\n      rules:\n        - expr: \"true\"\n", 6, "metric-rules", "unique name"},
		{"bad extension", "environment: prod\nchecks:\n  - name: allowed-formats\n    params:\n      extensions: [json]\n", 5, "allowed-formats", "extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadPolicy([]byte(tt.doc))
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *PolicyError", err)
			}
			if pe.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", pe.Line, tt.line, err)
			}
			if pe.Check != tt.check {
				t.Errorf("check = %q, want %q (%v)", pe.Check, tt.check, err)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
		})
	}
}

func TestCheckNamesAreConstructible(t *testing.T) {
	minimal := map[string]string{
		"soak-time":         "min: 1h",
		"freeze-windows":    "windows: [{name: x, start: 2026-01-01, end: 2026-01-02}]",
		"size-limits":       "max_file_bytes: 1",
		"required-evidence": "types: [junit]",
		"metric-rules":      "rules: [{name: r, expr: \"true\"}]",
		"provenance":        "repositories: [acme/model]",
	}
	for _, name := range CheckNames() {
		if name == "metric-rules" && !celAvailable() {
			continue
		}
		c := buildCheck(t, name, minimal[name])
		if c.Name() != name {
			t.Errorf("check %q reports name %q", name, c.Name())
		}
	}
}

// celAvailable reports whether this build has CEL support.
func celAvailable() bool {
	_, err := compileMetricExpr("true")
	return err == nil
}
