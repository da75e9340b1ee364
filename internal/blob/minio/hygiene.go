package minio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/stagegate/stagegate/internal/blob"
)

var (
	_ blob.Lister   = (*Driver)(nil)
	_ blob.Deleter  = (*Driver)(nil)
	_ blob.Replacer = (*Driver)(nil)
	_ blob.Uploads  = (*Driver)(nil)
)

// List implements blob.Lister with a recursive ListObjects; ModTime is the
// object's LastModified (when its upload completed).
func (d *Driver) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine when fn fails
	for obj := range d.core.Client.ListObjects(ctx, d.bucket, miniogo.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("minio: list %q: %w", prefix, mapErr(obj.Err))
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue // a directory marker some tools create; not an object of ours
		}
		if err := fn(blob.Info{Key: obj.Key, Size: obj.Size, ModTime: obj.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Delete implements blob.Deleter. On a bucket with object lock, removing
// without a version id would only add a delete marker and free nothing, so
// the current version is removed by id; MinIO refuses while it is retained,
// which is reported as blob.ErrLocked.
func (d *Driver) Delete(ctx context.Context, key string) error {
	if err := blob.CheckKey(key); err != nil {
		return err
	}
	opts := miniogo.RemoveObjectOptions{}
	if d.locked {
		oi, err := d.core.StatObject(ctx, d.bucket, key, miniogo.StatObjectOptions{})
		if err != nil {
			if errors.Is(mapErr(err), blob.ErrNotFound) {
				return nil
			}
			return fmt.Errorf("minio: delete %q: %w", key, mapErr(err))
		}
		opts.VersionID = oi.VersionID
	}
	if err := d.core.RemoveObject(ctx, d.bucket, key, opts); err != nil {
		return fmt.Errorf("minio: delete %q: %w", key, lockErr(err))
	}
	return nil
}

// Replace implements blob.Replacer: Put without the create-once condition.
// A single PUT or the completion of a multipart upload publishes the new
// bytes atomically, and only after the reader reached EOF (a verifying
// reader's veto leaves the old object in place). On a locked bucket the old
// version stays retained beside the new one.
func (d *Driver) Replace(ctx context.Context, key string, r io.Reader, size int64) error {
	return d.put(ctx, key, r, size, true)
}

// ListUploads implements blob.Uploads: the bucket's incomplete multipart
// uploads (a process killed mid-upload leaves them).
func (d *Driver) ListUploads(ctx context.Context, fn func(blob.Upload) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for up := range d.core.ListIncompleteUploads(ctx, d.bucket, "", true) {
		if up.Err != nil {
			return fmt.Errorf("minio: list uploads: %w", mapErr(up.Err))
		}
		if err := fn(blob.Upload{ID: up.UploadID, Key: up.Key, Size: up.Size, Started: up.Initiated}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// AbortUpload implements blob.Uploads.
func (d *Driver) AbortUpload(ctx context.Context, u blob.Upload) error {
	if err := blob.CheckKey(u.Key); err != nil {
		return err
	}
	err := d.core.AbortMultipartUpload(ctx, d.bucket, u.Key, u.ID)
	if err != nil && miniogo.ToErrorResponse(err).Code != "NoSuchUpload" {
		return fmt.Errorf("minio: abort upload %s of %q: %w", u.ID, u.Key, mapErr(err))
	}
	return nil
}

// lockErr maps MinIO's refusal to remove a retained object to
// blob.ErrLocked. MinIO answers 400 InvalidRequest "Object is WORM protected
// and cannot be overwritten" (observed with this MinIO); S3 answers 403
// AccessDenied. The message is what tells them from other refusals.
func lockErr(err error) error {
	resp := miniogo.ToErrorResponse(err)
	msg := strings.ToLower(resp.Message)
	if (resp.Code == "InvalidRequest" || resp.Code == "AccessDenied" || resp.Code == "ObjectLocked") &&
		(strings.Contains(msg, "worm") || strings.Contains(msg, "retention") || strings.Contains(msg, "object lock")) {
		return fmt.Errorf("%w: %w", blob.ErrLocked, err)
	}
	return mapErr(err)
}
