package metadata_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/metadata/metadatatest"
)

// The suites below need a second, raw connection to the store's database
// (what anyone with database access has), or several Stores on one
// database, which RunStoreSuite's fresh store per test cannot give.

// rawDB opens a plain connection to dsn with driverName ("sqlite", "pgx").
func rawDB(t *testing.T, driverName, dsn string) *sql.DB {
	t.Helper()
	raw, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func sqliteFile(t *testing.T) string { return filepath.Join(t.TempDir(), "metadata.db") }

func TestSQLiteAuditReplicas(t *testing.T) {
	metadatatest.RunAuditReplicaSuite(t, metadata.DriverSQLite, sqliteFile(t))
}

func TestPostgresAuditReplicas(t *testing.T) {
	metadatatest.RunAuditReplicaSuite(t, metadata.DriverPostgres, freshPostgres(t))
}

func TestSQLiteAppendOnly(t *testing.T) {
	path := sqliteFile(t)
	metadatatest.RunAppendOnlySuite(t, metadata.DriverSQLite, path, rawDB(t, "sqlite", path))
}

func TestPostgresAppendOnly(t *testing.T) {
	dsn := freshPostgres(t)
	metadatatest.RunAppendOnlySuite(t, metadata.DriverPostgres, dsn, rawDB(t, "pgx", dsn))
}

func TestSQLiteAuditLegacySeal(t *testing.T) {
	path := sqliteFile(t)
	metadatatest.RunLegacySealSuite(t, metadata.DriverSQLite, path, rawDB(t, "sqlite", path))
}

func TestPostgresAuditLegacySeal(t *testing.T) {
	dsn := freshPostgres(t)
	metadatatest.RunLegacySealSuite(t, metadata.DriverPostgres, dsn, rawDB(t, "pgx", dsn))
}

func TestSQLiteAuditTamper(t *testing.T) {
	path := sqliteFile(t)
	metadatatest.RunTamperSuite(t, metadata.DriverSQLite, path, rawDB(t, "sqlite", path))
}

func TestPostgresAuditTamper(t *testing.T) {
	dsn := freshPostgres(t)
	metadatatest.RunTamperSuite(t, metadata.DriverPostgres, dsn, rawDB(t, "pgx", dsn))
}
