package config

import (
	"strings"
	"testing"
)

func TestRetention(t *testing.T) {
	const minio = "storage: {driver: minio, minio: {endpoint: \"m:9000\"}}\n"
	tests := []struct {
		name, yaml string
		want       *Retention // when valid
		err        string     // when not
	}{
		{"governance", minio + "environments: [{name: dev}, {name: prod, retention: {mode: governance, days: 30}}]\n",
			&Retention{Mode: "governance", Days: 30}, ""},
		{"compliance", minio + "environments: [{name: dev}, {name: prod, retention: {mode: compliance, days: 3650}}]\n",
			&Retention{Mode: "compliance", Days: 3650}, ""},
		{"none", minio + "environments: [{name: dev}, {name: prod}]\n", nil, ""},
		{"unknown mode", minio + "environments: [{name: prod, retention: {mode: legal-hold, days: 1}}]\n", nil, "retention.mode"},
		{"zero days", minio + "environments: [{name: prod, retention: {mode: governance}}]\n", nil, "retention.days 0"},
		{"too many days", minio + "environments: [{name: prod, retention: {mode: governance, days: 365000}}]\n", nil, "retention.days"},
		{"unknown key", minio + "environments: [{name: prod, retention: {mode: governance, days: 1, years: 2}}]\n", nil, "field years not found"},
		{"filesystem", "environments: [{name: prod, retention: {mode: governance, days: 1}}]\n", nil, "needs storage.driver minio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tt.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Environments[len(cfg.Environments)-1].Retention
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Fatalf("retention = %+v, want %+v", got, tt.want)
			}
		})
	}
}
