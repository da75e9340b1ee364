package config

import (
	"strings"
	"testing"
)

func TestMetricsAddr(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "default: on the main listener", want: ""},
		{name: "yaml", yaml: "server: {metrics_addr: 127.0.0.1:9090}\n", want: "127.0.0.1:9090"},
		{name: "variable over yaml", yaml: "server: {metrics_addr: 127.0.0.1:9090}\n",
			env: map[string]string{"STAGEGATE_METRICS_ADDR": "0.0.0.0:9091"}, want: "0.0.0.0:9091"},
		{name: "same as addr", yaml: "addr: 127.0.0.1:8080\nserver: {metrics_addr: 127.0.0.1:8080}\n",
			wantErr: "server.metrics_addr"},
		{name: "both on a free port", yaml: "addr: 127.0.0.1:0\nserver: {metrics_addr: 127.0.0.1:0}\n", want: "127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.ApplyEnv(func(k string) string { return tt.env[k] }); err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate = %v, want an error about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.MetricsAddr != tt.want {
				t.Errorf("metrics addr %q, want %q", cfg.Server.MetricsAddr, tt.want)
			}
		})
	}
}
