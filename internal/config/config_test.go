package config

import (
	"strings"
	"testing"
	"time"
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
		{"zero idle timeout", "server: {idle_timeout: 0s}\n", "server.idle_timeout must be a positive duration"},
		{"negative write timeout", "server: {write_timeout: -1s}\n", "server.write_timeout must be a positive duration"},
		{"zero header timeout", "server: {read_header_timeout: 0s}\n", "server.read_header_timeout"},
		{"zero rate window", "server: {upload_rate_window: 0s}\n", "server.upload_rate_window"},
		{"zero shutdown timeout", "server: {shutdown_timeout: 0s}\n", "server.shutdown_timeout must be a positive duration"},
		{"unknown role", "limits: {requests: {auditor: {per_second: 1, burst: 1}}}\n", "field auditor not found"},
		{"negative rate", "limits: {requests: {default: {per_second: -1, burst: 1}}}\n", "limits.requests.default.per_second"},
		{"rate without burst", "limits: {requests: {reader: {per_second: 5}}}\n", "limits.requests.reader.burst must be at least 1"},
		{"negative upload cap", "limits: {uploads_per_key: -1}\n", "limits.uploads_per_key must not be negative"},
		// A bare number would otherwise be nanoseconds: refused, not guessed.
		{"duration without unit", "server: {idle_timeout: 120}\n", "time.Duration"},
		{"bad duration", "server: {idle_timeout: soon}\n", "time.Duration"},
		{"bad rate", "server: {min_upload_rate: fast}\n", "invalid size"},
		{"unknown server key", "server: {read_timeout: 1s}\n", "field read_timeout not found"},
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

func TestServerSettings(t *testing.T) {
	defaults := Default().Server
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want Server
	}{
		{
			name: "defaults",
			want: Server{IdleTimeout: 120 * time.Second, ReadHeaderTimeout: 30 * time.Second,
				WriteTimeout: 60 * time.Second, MinUploadRate: 64 << 10, UploadRateWindow: 30 * time.Second,
				ShutdownTimeout: 30 * time.Second},
		},
		{
			name: "yaml",
			yaml: "server: {idle_timeout: 5m, read_header_timeout: 10s, write_timeout: 2m, min_upload_rate: 1MiB, upload_rate_window: 1m, shutdown_timeout: 2m}\n",
			want: Server{IdleTimeout: 5 * time.Minute, ReadHeaderTimeout: 10 * time.Second,
				WriteTimeout: 2 * time.Minute, MinUploadRate: 1 << 20, UploadRateWindow: time.Minute,
				ShutdownTimeout: 2 * time.Minute},
		},
		{
			name: "environment over yaml",
			yaml: "server: {idle_timeout: 5m, min_upload_rate: 1MiB}\n",
			env: map[string]string{"STAGEGATE_IDLE_TIMEOUT": "90s", "STAGEGATE_READ_HEADER_TIMEOUT": "5s",
				"STAGEGATE_WRITE_TIMEOUT": "45s", "STAGEGATE_MIN_UPLOAD_RATE": "128KiB", "STAGEGATE_UPLOAD_RATE_WINDOW": "10s",
				"STAGEGATE_SHUTDOWN_TIMEOUT": "1m"},
			want: Server{IdleTimeout: 90 * time.Second, ReadHeaderTimeout: 5 * time.Second,
				WriteTimeout: 45 * time.Second, MinUploadRate: 128 << 10, UploadRateWindow: 10 * time.Second,
				ShutdownTimeout: time.Minute},
		},
		{
			name: "rate zero disables the minimum and is valid",
			env:  map[string]string{"STAGEGATE_MIN_UPLOAD_RATE": "0"},
			want: Server{IdleTimeout: defaults.IdleTimeout, ReadHeaderTimeout: defaults.ReadHeaderTimeout,
				WriteTimeout: defaults.WriteTimeout, MinUploadRate: 0, UploadRateWindow: defaults.UploadRateWindow,
				ShutdownTimeout: defaults.ShutdownTimeout},
		},
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
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if cfg.Server != tt.want {
				t.Fatalf("server settings = %+v, want %+v", cfg.Server, tt.want)
			}
		})
	}
}

func TestInvalidServerEnvRefused(t *testing.T) {
	tests := []struct{ name, value, want string }{
		{"STAGEGATE_IDLE_TIMEOUT", "2", "STAGEGATE_IDLE_TIMEOUT: time: missing unit"},
		{"STAGEGATE_IDLE_TIMEOUT", "-5s", "server.idle_timeout must be a positive duration"},
		{"STAGEGATE_READ_HEADER_TIMEOUT", "later", "STAGEGATE_READ_HEADER_TIMEOUT: time: invalid duration"},
		{"STAGEGATE_WRITE_TIMEOUT", "0s", "server.write_timeout must be a positive duration"},
		{"STAGEGATE_UPLOAD_RATE_WINDOW", "x", "STAGEGATE_UPLOAD_RATE_WINDOW"},
		{"STAGEGATE_MIN_UPLOAD_RATE", "fast", "STAGEGATE_MIN_UPLOAD_RATE: invalid size"},
		{"STAGEGATE_SHUTDOWN_TIMEOUT", "-1s", "server.shutdown_timeout must be a positive duration"},
		{"STAGEGATE_REQUESTS_PER_SECOND", "fast", "STAGEGATE_REQUESTS_PER_SECOND"},
		{"STAGEGATE_REQUESTS_PER_SECOND", "NaN", "limits.requests.default.per_second must be a finite number"},
		{"STAGEGATE_REQUESTS_PER_SECOND", "-2", "limits.requests.default.per_second"},
		{"STAGEGATE_REQUESTS_BURST", "0", "limits.requests.default.burst must be at least 1"},
		{"STAGEGATE_UPLOADS_PER_KEY", "many", "STAGEGATE_UPLOADS_PER_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			cfg := Default()
			err := cfg.ApplyEnv(func(k string) string {
				if k == tt.name {
					return tt.value
				}
				return ""
			})
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestRequestLimits(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		uploads int
		want    map[string]Rate // by role
	}{
		{
			name:    "defaults: one generous bucket for every role",
			uploads: 16,
			want: map[string]Rate{"reader": {200, 2000}, "publisher": {200, 2000}, "promoter": {200, 2000},
				"approver": {200, 2000}, "admin": {200, 2000}},
		},
		{
			name:    "a role overrides the default",
			yaml:    "limits: {uploads_per_key: 4, requests: {default: {per_second: 10, burst: 20}, reader: {per_second: 0}}}\n",
			uploads: 4,
			want:    map[string]Rate{"reader": {0, 0}, "publisher": {10, 20}, "admin": {10, 20}},
		},
		{
			name:    "environment over yaml",
			yaml:    "limits: {requests: {default: {per_second: 10, burst: 20}, admin: {per_second: 1, burst: 1}}}\n",
			env:     map[string]string{"STAGEGATE_REQUESTS_PER_SECOND": "2.5", "STAGEGATE_REQUESTS_BURST": "5", "STAGEGATE_UPLOADS_PER_KEY": "0"},
			uploads: 0,
			want:    map[string]Rate{"publisher": {2.5, 5}, "admin": {1, 1}},
		},
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
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if cfg.Limits.UploadsPerKey != tt.uploads {
				t.Errorf("uploads_per_key = %d, want %d", cfg.Limits.UploadsPerKey, tt.uploads)
			}
			for role, want := range tt.want {
				if got := cfg.Limits.Requests.For(role); got != want {
					t.Errorf("%s: %+v, want %+v", role, got, want)
				}
			}
		})
	}
}
