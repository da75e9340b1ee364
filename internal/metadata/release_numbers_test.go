package metadata

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pressly/goose/v3"
)

// TestReleaseNumbersBackfill: migration 00005 numbers the releases that
// existed before it per environment and name, in chain (id) order, and
// later releases continue from there.
func TestReleaseNumbersBackfill(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "old.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		checkBackfill(t, DriverSQLite, db)
	})
	t.Run("postgres", func(t *testing.T) {
		db := freshPostgresDB(t)
		checkBackfill(t, DriverPostgres, db)
	})
}

func checkBackfill(t *testing.T, driver string, db *sql.DB) {
	ctx := context.Background()
	dialect := goose.DialectSQLite3
	if driver == DriverPostgres {
		dialect = goose.DialectPostgres
	}
	fsys, err := fs.Sub(migrations, "migrations/"+driver)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(dialect, db, fsys, goose.WithDisableGlobalRegistry(true), goose.WithSlog(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatalf("migrate to 4: %v", err)
	}
	// Releases as a server before 00005 wrote them: interleaved names and
	// environments, each chain linked by previous_id.
	type row struct{ env, name, version string }
	rows := []row{
		{"prod", "a", "1.0.0"}, {"staging", "a", "1.0.0"}, {"prod", "b", "1.0.0"},
		{"prod", "a", "1.1.0"}, {"prod", "a", "1.0.0"}, {"staging", "a", "1.1.0"},
	}
	last := map[string]int64{}
	for i, r := range rows {
		var previous sql.NullInt64
		if id, ok := last[r.env+"/"+r.name]; ok {
			previous = sql.NullInt64{Int64: id, Valid: true}
		}
		action := "promotion"
		if i == 4 {
			action = "rollback"
		}
		var id int64
		err := db.QueryRowContext(ctx, `INSERT INTO releases (environment, name, version, manifest_digest,
				action, source, previous_id, actor, reason, gate_run_id, created_at)
			VALUES ($1, $2, $3, $4, $5, '', $6, 'ci', '', '', '2025-01-01T00:00:00.000000Z') RETURNING id`,
			r.env, r.name, r.version, "sha256:"+hex.EncodeToString(make([]byte, 32)), action, previous).Scan(&id)
		if err != nil {
			t.Fatalf("insert release %d: %v", i, err)
		}
		last[r.env+"/"+r.name] = id
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatalf("migrate to 5: %v", err)
	}
	got := map[string][]int64{}
	rs, err := db.QueryContext(ctx, `SELECT environment, name, number FROM releases ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var env, name string
		var number int64
		if err := rs.Scan(&env, &name, &number); err != nil {
			t.Fatal(err)
		}
		got[env+"/"+name] = append(got[env+"/"+name], number)
	}
	want := map[string][]int64{"prod/a": {1, 2, 3}, "staging/a": {1, 2}, "prod/b": {1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backfilled numbers (-want +got):\n%s", diff)
	}
	// The unique index holds: a second release 1 of prod/b is refused.
	_, err = db.ExecContext(ctx, `INSERT INTO releases (environment, name, version, manifest_digest,
			action, source, previous_id, actor, reason, gate_run_id, created_at, number)
		VALUES ('prod', 'b', '2.0.0', 'sha256:00', 'promotion', '', NULL, 'ci', '', '', '2025-01-01T00:00:00.000000Z', 1)`)
	if err == nil {
		t.Error("a second release numbered 1 of prod/b was accepted")
	}
	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Errorf("migrate down to 4: %v", err)
	}
}

// freshPostgresDB opens a new database on the server named by
// STAGEGATE_TEST_POSTGRES_DSN, dropped when t ends.
func freshPostgresDB(t *testing.T) *sql.DB {
	t.Helper()
	dsn := os.Getenv("STAGEGATE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("STAGEGATE_TEST_POSTGRES_DSN is not set; skipping PostgreSQL")
	}
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Skipf("STAGEGATE_TEST_POSTGRES_DSN is not a postgres:// URL")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "stagegate_test_numbers_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		t.Fatalf("create database: %v", err)
	}
	u.Path = "/" + name
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close()
	})
	return db
}
