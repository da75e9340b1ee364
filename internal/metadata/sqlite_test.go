package metadata_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/metadata/metadatatest"
)

func openSQLite(t *testing.T, dsn string) *metadata.Store {
	t.Helper()
	s, err := metadata.Open(context.Background(), metadata.DriverSQLite, dsn)
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
	metadatatest.RunStoreSuite(t, func(t *testing.T) *metadata.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "metadata.db"))
	})
}

func TestSQLiteInMemory(t *testing.T) {
	metadatatest.RunStoreSuite(t, func(t *testing.T) *metadata.Store {
		return openSQLite(t, ":memory:")
	})
}

func TestSQLiteReopen(t *testing.T) {
	metadatatest.RunReopenSuite(t, metadata.DriverSQLite, filepath.Join(t.TempDir(), "metadata.db"))
}

func TestOpenUnknownDriver(t *testing.T) {
	if _, err := metadata.Open(context.Background(), "mysql", "x"); err == nil {
		t.Fatal("Open with an unknown driver succeeded")
	}
}
