package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/stagegate/stagegate/internal/blob"
)

var (
	_ blob.Lister   = (*Driver)(nil)
	_ blob.Deleter  = (*Driver)(nil)
	_ blob.Replacer = (*Driver)(nil)
	_ blob.Uploads  = (*Driver)(nil)
)

// List implements blob.Lister: a walk of the directory tree under root,
// without the temp directory. ModTime is the file's modification time,
// which for a published object is when its temp file was last written.
func (d *Driver) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	// Walk only the deepest directory the prefix names in full.
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		if err := blob.CheckKey(prefix[:i]); err != nil {
			return err
		}
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking, or the prefix is absent
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, rerr := filepath.Rel(d.root, path)
		if rerr != nil {
			return rerr
		}
		key := filepath.ToSlash(rel)
		if e.IsDir() {
			if key == tmpDir {
				return fs.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(blob.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("filesystem: list %q: %w", prefix, err)
	}
	return nil
}

// Delete implements blob.Deleter. Empty parent directories are left: a
// concurrent Put may be about to link into them.
func (d *Driver) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("filesystem: delete %q: %w", key, err)
	}
	return nil
}

// Replace implements blob.Replacer: the bytes go to a temp file, are made
// durable, and rename(2) swaps them in atomically. A reader that opened
// the old file keeps reading the old bytes.
func (d *Driver) Replace(ctx context.Context, key string, r io.Reader, size int64) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	return d.store(ctx, "replace", key, p, r, size, os.Rename)
}

// ListUploads implements blob.Uploads: the files in the temp directory.
// A crash between writing a temp file and linking it leaves one behind;
// which key it was for is not known.
func (d *Driver) ListUploads(ctx context.Context, fn func(blob.Upload) error) error {
	entries, err := os.ReadDir(filepath.Join(d.root, tmpDir))
	if err != nil {
		return fmt.Errorf("filesystem: list uploads: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // finished meanwhile
		}
		if err != nil {
			return fmt.Errorf("filesystem: list uploads: %w", err)
		}
		if err := fn(blob.Upload{ID: e.Name(), Size: fi.Size(), Started: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// AbortUpload implements blob.Uploads by removing the temp file. A Put
// still writing to it fails at its Link (the name is gone), so nothing
// torn becomes visible.
func (d *Driver) AbortUpload(ctx context.Context, u blob.Upload) error {
	if u.ID == "" || u.ID != filepath.Base(u.ID) || strings.HasPrefix(u.ID, ".") {
		return fmt.Errorf("%w: upload id %q", blob.ErrInvalidKey, u.ID)
	}
	if err := os.Remove(filepath.Join(d.root, tmpDir, u.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("filesystem: abort upload %q: %w", u.ID, err)
	}
	return nil
}
