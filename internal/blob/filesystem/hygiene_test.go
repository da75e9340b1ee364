package filesystem_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
)

// TestUploads: a temp file left by a crashed Put is an incomplete upload;
// List never shows it, ListUploads does, AbortUpload removes it.
func TestUploads(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(root, ".tmp", "put-123")
	if err := os.WriteFile(leftover, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-72 * time.Hour)
	if err := os.Chtimes(leftover, old, old); err != nil {
		t.Fatal(err)
	}
	if err := d.List(ctx, "", func(i blob.Info) error {
		t.Errorf("List showed %q", i.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var ups []blob.Upload
	if err := d.ListUploads(ctx, func(u blob.Upload) error { ups = append(ups, u); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || ups[0].ID != "put-123" || ups[0].Size != 7 || !ups[0].Started.Equal(old) {
		t.Fatalf("ListUploads = %+v", ups)
	}
	for _, tc := range []struct {
		id  string
		err error
	}{
		{"put-123", nil},
		{"put-123", nil}, // already gone
		{"../escape", blob.ErrInvalidKey},
		{".", blob.ErrInvalidKey},
		{"", blob.ErrInvalidKey},
	} {
		if err := d.AbortUpload(ctx, blob.Upload{ID: tc.id}); !errors.Is(err, tc.err) {
			t.Errorf("AbortUpload(%q) = %v, want %v", tc.id, err, tc.err)
		}
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover still there: %v", err)
	}
}
