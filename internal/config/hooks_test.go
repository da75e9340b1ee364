package config

import (
	"strings"
	"testing"
)

func TestHooks(t *testing.T) {
	const secret = "0123456789abcdef-secret"
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		token string // the prod hook's secret; "" = off
		err   string
	}{
		{"off by default", "environments: [{name: prod}]\n", nil, "", ""},
		{"from a variable", "environments: [{name: prod, hooks: {alertmanager_secret_env: PROD_AM_SECRET}}]\n",
			map[string]string{"PROD_AM_SECRET": secret}, secret, ""},
		{"inline", "environments: [{name: prod, hooks: {alertmanager_secret: " + secret + "}}]\n", nil, secret, ""},
		{"both", "environments: [{name: prod, hooks: {alertmanager_secret: " + secret + ", alertmanager_secret_env: X}}]\n",
			map[string]string{"X": secret}, "", "not both"},
		{"variable unset", "environments: [{name: prod, hooks: {alertmanager_secret_env: PROD_AM_SECRET}}]\n", nil, "", "empty or unset"},
		{"not a variable name", "environments: [{name: prod, hooks: {alertmanager_secret_env: \"$X\"}}]\n", nil, "", "not a variable name"},
		{"too short", "environments: [{name: prod, hooks: {alertmanager_secret: short}}]\n", nil, "", "shorter than 16"},
		{"unknown hook", "environments: [{name: prod, hooks: {slack: x}}]\n", nil, "", "field slack not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tt.yaml))
			if err == nil {
				err = cfg.ApplyEnv(func(k string) string { return tt.env[k] })
			}
			if err == nil {
				err = cfg.Validate()
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Environments[0].Hooks.AlertmanagerToken(); got != tt.token {
				t.Errorf("secret %q, want %q", got, tt.token)
			}
		})
	}
}
