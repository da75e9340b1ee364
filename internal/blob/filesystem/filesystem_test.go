package filesystem_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/blobtest"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
)

func newDriver(t *testing.T) *filesystem.Driver {
	t.Helper()
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDriverSuite(t *testing.T) {
	if runtime.GOOS == "linux" && !filesystem.Anonymous(newDriver(t)) {
		t.Error("on Linux the driver should write through unnamed files (O_TMPFILE)")
	}
	blobtest.RunDriverSuite(t, func(t *testing.T) blob.Driver { return newDriver(t) })
}

// TestDriverSuiteNamedTemp runs the suite on the path of systems without
// O_TMPFILE: named temp files.
func TestDriverSuiteNamedTemp(t *testing.T) {
	blobtest.RunDriverSuite(t, func(t *testing.T) blob.Driver { return filesystem.WithoutAnonymous(newDriver(t)) })
}

// TestCorruptFileDetected damages a stored blob on disk, the way bit rot
// or a careless operator would, and expects OpenBlob's reader to notice.
func TestCorruptFileDetected(t *testing.T) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	s := blob.NewStore(d)
	data := bytes.Repeat([]byte("model weights "), 1000)
	sum := sha256.Sum256(data)
	dgst := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if _, err := s.PutBlob(context.Background(), dgst, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, filepath.FromSlash(blob.BlobKey(dgst)))
	data[42] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	blobtest.ExpectCorrupt(t, s, dgst)
}

// TestNoTempFilesLeft checks that failed and successful uploads alike
// leave nothing in the temp directory.
func TestNoTempFilesLeft(t *testing.T) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Put(ctx, "ok", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "ok", bytes.NewReader([]byte("y")), 1); err == nil {
		t.Fatal("second Put succeeded")
	}
	if err := d.Put(ctx, "short", bytes.NewReader([]byte("y")), 2); err == nil {
		t.Fatal("short Put succeeded")
	}
	entries, err := os.ReadDir(filepath.Join(root, ".tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestNewCreatesRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b")
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := d.Ping(context.Background()); err == nil {
		t.Error("Ping succeeded after the root was removed")
	}
}
