package metadata_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/metadata/metadatatest"
	"github.com/stagegate/stagegate/registry"
)

// testEnvironments configures the stores of tests outside the conformance
// suite.
func testEnvironments() []string { return []string{"dev", "prod"} }

func openSQLite(t *testing.T, dsn string, environments []string) *metadata.Store {
	t.Helper()
	s, err := metadata.Open(context.Background(), metadata.DriverSQLite, dsn, environments)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestSQLite(t *testing.T) {
	metadatatest.RunStoreSuite(t, func(t *testing.T, environments []string) *metadata.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "metadata.db"), environments)
	})
}

func TestSQLiteInMemory(t *testing.T) {
	metadatatest.RunStoreSuite(t, func(t *testing.T, environments []string) *metadata.Store {
		return openSQLite(t, ":memory:", environments)
	})
}

func TestSQLiteReopen(t *testing.T) {
	metadatatest.RunReopenSuite(t, metadata.DriverSQLite, filepath.Join(t.TempDir(), "metadata.db"))
}

func TestOpenRefused(t *testing.T) {
	tests := []struct {
		name         string
		driver       string
		environments []string
	}{
		{"unknown driver", "mysql", testEnvironments()},
		{"no environments", metadata.DriverSQLite, nil},
		{"empty environment list", metadata.DriverSQLite, []string{}},
		{"empty environment name", metadata.DriverSQLite, []string{"dev", ""}},
		{"duplicate environment", metadata.DriverSQLite, []string{"dev", "prod", "dev"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := metadata.Open(context.Background(), tc.driver, ":memory:", tc.environments)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if registry.KindOf(err) != registry.Invalid {
				t.Errorf("Open: %v, want an Invalid error", err)
			}
		})
	}
}

// TestSQLiteFileMode: the database holds key hashes and the audit trail,
// so its files are the owner's alone, however they came to exist.
func TestSQLiteFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	tests := []struct {
		name string
		// prepare creates whatever is at path before Open, and returns the DSN.
		prepare func(t *testing.T, path string) string
	}{
		{"fresh path", func(t *testing.T, path string) string { return path }},
		{"fresh path with parameters", func(t *testing.T, path string) string {
			return path + "?_pragma=cache_size(-2000)"
		}},
		{"fresh file URI", func(t *testing.T, path string) string { return "file:" + path + "?cache=private" }},
		{"existing world-readable file", func(t *testing.T, path string) string {
			createWithMode(t, path, 0o644)
			return path
		}},
		{"existing group-writable file and WAL", func(t *testing.T, path string) string {
			createWithMode(t, path, 0o660)
			createWithMode(t, path+"-wal", 0o644)
			return path
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "metadata.db")
			s := openSQLite(t, tc.prepare(t, path), testEnvironments())
			// A write, so that SQLite has made its -wal and -shm files.
			dev, err := s.Env("dev")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dev.AppendAudit(context.Background(), auditEvent("dev")); err != nil {
				t.Fatalf("AppendAudit: %v", err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				info, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if got := info.Mode().Perm(); got != 0o600 {
					t.Errorf("%s has mode %#o, want 0600", filepath.Base(p), got)
				}
			}
		})
	}
}

func createWithMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, nil, mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteUnboundAudit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	s := openSQLite(t, path, testEnvironments())
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	checkUnboundAudit(t, s, raw)
}
