package hygiene

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	blobminio "github.com/stagegate/stagegate/internal/blob/minio"
)

// minioFixture is a fixture on a fresh MinIO bucket (with retention when r
// is set), removed with every object version when the test ends. It skips
// without the MinIO the test script starts.
func minioFixture(t *testing.T, r *blobminio.Retention) (*fixture, *miniogo.Core, string) {
	t.Helper()
	endpoint := os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT")
	if endpoint == "" {
		t.Skip("STAGEGATE_TEST_MINIO_ENDPOINT is not set; skipping the MinIO variant")
	}
	access, secret := os.Getenv("STAGEGATE_TEST_MINIO_ACCESS_KEY"), os.Getenv("STAGEGATE_TEST_MINIO_SECRET_KEY")
	bucket := "stagegate-gc-" + strings.ToLower(rand.Text()[:16])
	d, err := blobminio.New(context.Background(), blobminio.Config{Endpoint: endpoint, AccessKey: access, SecretKey: secret,
		Bucket: bucket, CreateBucket: true, Retention: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := miniogo.New(endpoint, &miniogo.Options{Creds: credentials.NewStaticV4(access, secret, "")})
		if err != nil {
			t.Error(err)
			return
		}
		for obj := range c.ListObjects(ctx, bucket, miniogo.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			if obj.Err == nil {
				_ = c.RemoveObject(ctx, bucket, obj.Key, miniogo.RemoveObjectOptions{VersionID: obj.VersionID, GovernanceBypass: true})
			}
		}
		if err := c.RemoveBucket(ctx, bucket); err != nil {
			t.Errorf("removing %s: %v", bucket, err)
		}
	})
	core, err := miniogo.NewCore(endpoint, &miniogo.Options{Creds: credentials.NewStaticV4(access, secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureOn(t, d, ""), core, bucket
}

// TestGCMinIO collects a MinIO bucket, with and without retention: locked
// orphans are skipped and reported, never removed.
func TestGCMinIO(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		retention *blobminio.Retention
	}{
		{"plain", nil},
		{"governance", &blobminio.Retention{Mode: "governance", Days: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, core, bucket := minioFixture(t, tc.retention)
			f.mustPublish(pubReq{name: "m", version: "1.0.0", files: map[string][]byte{"w": []byte("weights")}})
			if _, err := f.publish(pubReq{name: "m", version: "1.0.0", files: map[string][]byte{"w": []byte("other")}}); err == nil {
				t.Fatal("conflicting publish succeeded")
			}
			f.upload([]byte("abandoned"))
			// A multipart upload a killed process left open.
			if _, err := core.NewMultipartUpload(context.Background(), bucket, "blobs/sha256/"+strings.Repeat("0", 64), miniogo.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			before := len(f.keys())
			removed := map[string]Removal{}
			// MinIO's clock cannot be turned back; gc's can go forward.
			g := &GC{Bucket: f.bucket, Index: f.handle, Grace: DefaultGrace, Now: func() time.Time { return time.Now().Add(72 * time.Hour) },
				Report: func(r Removal) { removed[r.Key] = r }, Retained: tc.retention != nil}
			res, err := g.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			locked := tc.retention != nil
			// 4 leftovers of the refused publish (file, manifest, its two
			// signatures), the abandoned blob, the open upload.
			if len(removed) != 6 || res.Failed != 0 || (locked && (res.Locked != 5 || res.Removed != 1)) || (!locked && res.Removed != 6) {
				t.Fatalf("result %+v, reports %v", res, removed)
			}
			want := before - 5
			if locked {
				want = before
			}
			if got := len(f.keys()); got != want {
				t.Errorf("%d objects left of %d, want %d", got, before, want)
			}
			for up := range core.ListIncompleteUploads(context.Background(), bucket, "", true) {
				t.Errorf("incomplete upload left: %+v", up)
			}
			if err := f.verifyAll(); err != nil {
				t.Fatal(err)
			}
			// Scrub and reindex work on MinIO too.
			sres, err := (&Scrub{Bucket: f.bucket, Index: f.handle}).Run(context.Background())
			if err != nil || !sres.OK() {
				t.Fatalf("scrub: %+v, %v", sres, err)
			}
			f.openMeta(t.TempDir() + "/rebuilt.db")
			rres, err := (&Reindex{Bucket: f.bucket, Index: f.handle, Environment: "dev"}).Run(context.Background())
			if err != nil || rres.Added != 1 || !rres.OK() {
				t.Fatalf("reindex: %+v, %v", rres, err)
			}
			if _, err := f.handle.GetVersion(context.Background(), "m", "1.0.0"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestGCConcurrentPublishesMinIO is TestGCConcurrentPublishes on MinIO,
// whose create-once writes and strong consistency the handshake relies on.
func TestGCConcurrentPublishesMinIO(t *testing.T) {
	t.Parallel()
	f, _, _ := minioFixture(t, nil)
	racePublishes(t, f)
}
