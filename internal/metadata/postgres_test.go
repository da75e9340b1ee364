package metadata_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/metadata/metadatatest"
	"github.com/stagegate/stagegate/registry"
)

// postgresDSNEnv names the environment variable that points the PostgreSQL
// tests at a server, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
// The role must be allowed to create databases.
const postgresDSNEnv = "STAGEGATE_TEST_POSTGRES_DSN"

// freshPostgres creates a uniquely named database on the server named by
// STAGEGATE_TEST_POSTGRES_DSN, drops it when t ends, and returns its DSN.
func freshPostgres(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(postgresDSNEnv)
	if dsn == "" {
		t.Skipf("%s is not set; skipping PostgreSQL tests", postgresDSNEnv)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("open %s: %v", postgresDSNEnv, err)
	}
	t.Cleanup(func() { admin.Close() })

	name := "stagegate_test_" + hex.EncodeToString(randomBytes(t, 6))
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		// Registered after admin.Close, so it runs before it.
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return withDatabase(t, dsn, name)
}

// withDatabase returns dsn (URL or key=value form) pointing at database name.
func withDatabase(t *testing.T, dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse %s: %v", postgresDSNEnv, err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name // later keys win
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func openPostgres(t *testing.T, dsn string, environments []string) *metadata.Store {
	t.Helper()
	s, err := metadata.Open(context.Background(), metadata.DriverPostgres, dsn, environments)
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

func TestPostgres(t *testing.T) {
	metadatatest.RunStoreSuite(t, func(t *testing.T, environments []string) *metadata.Store {
		return openPostgres(t, freshPostgres(t), environments)
	})
}

func TestPostgresReopen(t *testing.T) {
	metadatatest.RunReopenSuite(t, metadata.DriverPostgres, freshPostgres(t))
}

// TestPostgresConcurrentMigrate starts several replicas on an empty
// database at once: the migration lock must let exactly one migrate.
func TestPostgresConcurrentMigrate(t *testing.T) {
	dsn := freshPostgres(t)
	const n = 4
	var (
		wg   sync.WaitGroup
		errs = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			var s *metadata.Store
			s, errs[i] = metadata.Open(context.Background(), metadata.DriverPostgres, dsn, testEnvironments())
			if errs[i] == nil {
				errs[i] = s.Close()
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
}

func TestPostgresUnreachable(t *testing.T) {
	ctx := context.Background()
	_, err := metadata.Open(ctx, metadata.DriverPostgres, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", testEnvironments())
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if registry.KindOf(err) != registry.Unavailable {
		t.Errorf("Open of an unreachable server: %v, want an Unavailable error", err)
	}
}

func TestPostgresUnboundAudit(t *testing.T) {
	dsn := freshPostgres(t)
	s := openPostgres(t, dsn, testEnvironments())
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	checkUnboundAudit(t, s, raw)
}
