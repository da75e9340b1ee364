package config

import (
	"strings"
	"testing"
)

func TestParseAndOverride(t *testing.T) {
	cfg, err := Parse(strings.NewReader(`
addr: 0.0.0.0:9000
environments: [{name: dev}, {name: prod, bucket: releases}]
storage: {driver: minio, minio: {endpoint: "m:9000", access_key: a, secret_key: s}}
database: {driver: postgres, dsn: "postgres://x@y/z"}
limits: {max_file_size: 2GiB}
`))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"STAGEGATE_ADDR": "127.0.0.1:1", "STAGEGATE_MAX_FILE_SIZE": "10MB"}
	if err := cfg.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:1" || cfg.Limits.MaxFileSize != 10_000_000 || cfg.Limits.MaxFiles != 10000 {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	if got := cfg.BucketFor(cfg.Environments[0]); got != "stagegate-dev" {
		t.Fatalf("default bucket %q", got)
	}
	if got := cfg.BucketFor(cfg.Environments[1]); got != "releases" {
		t.Fatalf("bucket override %q", got)
	}
}

func TestInvalidConfigRefused(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "adr: x\n", "field adr not found"},
		{"bad size", "limits: {max_file_size: lots}\n", "invalid size"},
		{"bad driver", "storage: {driver: s3}\n", "storage.driver"},
		{"shared bucket", "environments: [{name: a, bucket: b}, {name: c, bucket: b}]\nstorage: {driver: minio, minio: {endpoint: x}}\n", "share bucket"},
		{"duplicate env", "environments: [{name: a}, {name: a}]\n", "listed twice"},
		{"bad env name", "environments: [{name: Prod}]\n", "environment name"},
		{"postgres without dsn", "database: {driver: postgres}\n", "database.dsn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tt.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{"1": 1, "1KiB": 1024, "5MB": 5e6, "2GiB": 2 << 30, " 3 TiB ": 3 << 40} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "1PiB", "99999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}
