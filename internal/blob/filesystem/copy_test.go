package filesystem_test

import (
	"path/filepath"
	"testing"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/blobtest"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
)

// TestCopySuite promotes between two roots, the embedded default's layout.
// The filesystem driver deliberately has no server-side copy: a hard link
// would make two environments share one inode, and each environment's
// storage must be a real copy, so tampering with or corrupting one cannot
// change another. The Store streams and verifies instead.
func TestCopySuite(t *testing.T) {
	blobtest.RunCopySuite(t, blobtest.Streamed, func(t *testing.T) (blob.Driver, blob.Driver) {
		dir := t.TempDir()
		src, err := filesystem.New(filepath.Join(dir, "staging"))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := filesystem.New(filepath.Join(dir, "prod"))
		if err != nil {
			t.Fatal(err)
		}
		return src, dst
	})
}
