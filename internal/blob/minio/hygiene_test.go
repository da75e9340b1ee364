package minio

import (
	"bytes"
	"context"
	"errors"
	"testing"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/stagegate/stagegate/internal/blob"
)

// TestUploads: an incomplete multipart upload is listed with its key and
// aborted by id.
func TestUploads(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	id, err := d.core.NewMultipartUpload(ctx, d.bucket, "blobs/sha256/abandoned", miniogo.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ups []blob.Upload
	if err := d.ListUploads(ctx, func(u blob.Upload) error { ups = append(ups, u); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || ups[0].ID != id || ups[0].Key != "blobs/sha256/abandoned" || ups[0].Started.IsZero() {
		t.Fatalf("ListUploads = %+v, want the upload %s", ups, id)
	}
	for range 2 { // the second abort finds it gone
		if err := d.AbortUpload(ctx, ups[0]); err != nil {
			t.Fatalf("AbortUpload: %v", err)
		}
	}
	if got := incompleteUploads(t, d, ""); len(got) != 0 {
		t.Fatalf("uploads left: %v", got)
	}
}

// TestRetention: a bucket created with retention keeps its objects WORM:
// Delete reports ErrLocked and the object stays; Replace adds a new
// version beside the retained one. A bucket made without object lock is
// refused rather than silently left unprotected.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Retention = &Retention{Mode: "governance", Days: 1}
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New with retention: %v", err)
	}
	cleanupLockedBucket(t, d)
	if !d.locked {
		t.Fatal("driver does not know its bucket is locked")
	}
	put := func(key, data string) {
		t.Helper()
		if err := d.Put(ctx, key, bytes.NewReader([]byte(data)), int64(len(data))); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	put("blobs/sha256/worm", "retained")
	if err := d.Put(ctx, "blobs/sha256/worm", bytes.NewReader([]byte("x")), 1); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("create-once on a locked bucket: %v, want ErrExists", err)
	}
	if err := d.Delete(ctx, "blobs/sha256/worm"); !errors.Is(err, blob.ErrLocked) {
		t.Fatalf("Delete of a retained object: %v, want ErrLocked", err)
	}
	rc, info, err := d.Get(ctx, "blobs/sha256/worm")
	if err != nil || info.Size != int64(len("retained")) {
		t.Fatalf("after a refused delete: %v, %+v", err, info)
	}
	rc.Close()
	if err := d.Delete(ctx, "blobs/sha256/absent"); err != nil {
		t.Fatalf("Delete of an absent key: %v", err)
	}
	// Reopening applies the rule to the existing locked bucket.
	if _, err := New(ctx, cfg); err != nil {
		t.Fatalf("reopening: %v", err)
	}

	plain := testConfig(t)
	p, err := New(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	cleanupBucket(t, p)
	plain.Retention = &Retention{Mode: "compliance", Days: 1}
	if _, err := New(ctx, plain); err == nil {
		t.Fatal("retention on a bucket without object lock was accepted")
	}
	plain.Retention = &Retention{Mode: "forever", Days: 1}
	if _, err := New(ctx, plain); err == nil {
		t.Fatal("an unknown retention mode was accepted")
	}
}

// cleanupLockedBucket removes every version of every object (bypassing
// governance retention, which the test credentials may) and the bucket.
func cleanupLockedBucket(t *testing.T, d *Driver) {
	t.Cleanup(func() {
		ctx := context.Background()
		for obj := range d.core.Client.ListObjects(ctx, d.bucket, miniogo.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			if obj.Err == nil {
				_ = d.core.RemoveObject(ctx, d.bucket, obj.Key, miniogo.RemoveObjectOptions{VersionID: obj.VersionID, GovernanceBypass: true})
			}
		}
		if err := d.core.RemoveBucket(ctx, d.bucket); err != nil {
			t.Errorf("removing test bucket %s: %v", d.bucket, err)
		}
	})
}
