package minio

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/blobtest"
)

// testConfig reads the MinIO server the test script started. Without it
// the tests skip: a bare `go test` must not need a server.
func testConfig(tb testing.TB) Config {
	tb.Helper()
	endpoint := os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT")
	if endpoint == "" {
		tb.Skip("STAGEGATE_TEST_MINIO_ENDPOINT is not set (host:port of a MinIO server, with STAGEGATE_TEST_MINIO_ACCESS_KEY and STAGEGATE_TEST_MINIO_SECRET_KEY); skipping MinIO tests")
	}
	return Config{
		Endpoint:     endpoint,
		AccessKey:    os.Getenv("STAGEGATE_TEST_MINIO_ACCESS_KEY"),
		SecretKey:    os.Getenv("STAGEGATE_TEST_MINIO_SECRET_KEY"),
		Bucket:       "stagegate-test-" + strings.ToLower(rand.Text()[:16]),
		CreateBucket: true,
	}
}

// newDriver returns a driver on a fresh bucket that is removed, with its
// contents, when the test ends.
func newDriver(tb testing.TB) *Driver {
	tb.Helper()
	cfg := testConfig(tb)
	d, err := New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	cleanupBucket(tb, d)
	return d
}

// cleanupBucket removes d's bucket, with its contents and open uploads, when
// the test ends.
func cleanupBucket(tb testing.TB, d *Driver) {
	tb.Cleanup(func() {
		ctx := context.Background()
		for obj := range d.core.Client.ListObjects(ctx, d.bucket, miniogo.ListObjectsOptions{Recursive: true}) {
			if obj.Err == nil {
				_ = d.core.RemoveObject(ctx, d.bucket, obj.Key, miniogo.RemoveObjectOptions{})
			}
		}
		for up := range d.core.ListIncompleteUploads(ctx, d.bucket, "", true) {
			if up.Err == nil {
				_ = d.core.AbortMultipartUpload(ctx, d.bucket, up.Key, up.UploadID)
			}
		}
		if err := d.core.RemoveBucket(ctx, d.bucket); err != nil {
			tb.Errorf("removing test bucket %s: %v", d.bucket, err)
		}
	})
}

func TestDriverSuite(t *testing.T) {
	testConfig(t) // skip once, not in every case
	blobtest.RunDriverSuite(t, func(t *testing.T) blob.Driver { return newDriver(t) })
}

// incompleteUploads lists multipart uploads left open under key.
func incompleteUploads(t *testing.T, d *Driver, key string) []string {
	t.Helper()
	var ids []string
	for up := range d.core.ListIncompleteUploads(context.Background(), d.bucket, key, true) {
		if up.Err != nil {
			t.Fatalf("ListIncompleteUploads: %v", up.Err)
		}
		ids = append(ids, up.UploadID)
	}
	return ids
}

var errBoom = errors.New("reader failed")

// TestFailedMultipartIsAborted checks what the suite cannot see: that a
// failed or refused multipart upload also leaves no parts behind.
func TestFailedMultipartIsAborted(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	const size = 3*DefaultPartSize + 1
	body := func() io.Reader { return io.LimitReader(rand.Reader, size) }
	cases := []struct {
		name    string
		prepare func(t *testing.T, key string)
		body    io.Reader
		want    error
	}{
		{
			name: "reader-error",
			body: io.MultiReader(io.LimitReader(rand.Reader, 2*DefaultPartSize), iotestErrReader{errBoom}),
			want: errBoom,
		},
		{
			name: "key-exists-at-start",
			prepare: func(t *testing.T, key string) {
				if err := d.Put(ctx, key, bytes.NewReader([]byte("x")), 1); err != nil {
					t.Fatal(err)
				}
			},
			body: body(),
			want: blob.ErrExists,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "aborted/" + tc.name
			if tc.prepare != nil {
				tc.prepare(t, key)
			}
			if err := d.Put(ctx, key, tc.body, -1); !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
			if ids := incompleteUploads(t, d, key); len(ids) != 0 {
				t.Errorf("incomplete uploads left: %v", ids)
			}
		})
	}
}

// TestCompleteRace pins the reason Put drives multipart uploads itself: an
// object published while our upload is in flight must make the completion
// fail, not be overwritten.
func TestCompleteRace(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	key := "race/complete"
	racer := &publishAfter{d: d, key: key, r: io.LimitReader(rand.Reader, 2*DefaultPartSize+5), after: DefaultPartSize + 1}
	err := d.Put(ctx, key, racer, -1)
	if !errors.Is(err, blob.ErrExists) {
		t.Fatalf("Put = %v, want ErrExists from CompleteMultipartUpload", err)
	}
	if racer.err != nil {
		t.Fatalf("competing Put: %v", racer.err)
	}
	info, err := d.Stat(ctx, key)
	if err != nil || info.Size != 6 {
		t.Fatalf("Stat = %+v, %v; want the competing 6-byte object", info, err)
	}
	if ids := incompleteUploads(t, d, key); len(ids) != 0 {
		t.Errorf("incomplete uploads left: %v", ids)
	}
}

// publishAfter stores a competing object under key once the multipart
// upload has begun (after bytes have been read).
type publishAfter struct {
	d     *Driver
	key   string
	r     io.Reader
	after int64
	n     int64
	done  bool
	err   error
}

func (p *publishAfter) Read(b []byte) (int, error) {
	if p.n >= p.after && !p.done {
		p.done = true
		p.err = p.d.Put(context.Background(), p.key, bytes.NewReader([]byte("winner")), 6)
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestNewMissingBucket(t *testing.T) {
	cfg := testConfig(t)
	cfg.CreateBucket = false
	if _, err := New(context.Background(), cfg); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("New without CreateBucket on a missing bucket = %v, want ErrNotFound", err)
	}
}

func TestNewConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Bucket: "b"},
		{Endpoint: "127.0.0.1:1"},
		{Endpoint: "127.0.0.1:1", Bucket: "b", PartSize: 1 << 20},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func ExampleNew() {
	d, err := New(context.Background(), Config{
		Endpoint: "minio.internal:9000", AccessKey: "…", SecretKey: "…",
		Bucket: "stagegate-prod", Secure: true, CreateBucket: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = blob.NewStore(d)
}
