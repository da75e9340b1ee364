package minio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/blobtest"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
)

// TestCopySuite promotes between two buckets that one credential can reach:
// the copy must be server-side.
func TestCopySuite(t *testing.T) {
	testConfig(t)
	blobtest.RunCopySuite(t, blobtest.ServerSide, func(t *testing.T) (blob.Driver, blob.Driver) {
		return newDriver(t), newDriver(t)
	})
}

// TestCopySuiteOtherServer promotes between buckets reached through
// different endpoints (the same test server under another name, standing in
// for two deployments): the Store must stream.
func TestCopySuiteOtherServer(t *testing.T) {
	cfg := testConfig(t)
	host, port, err := net.SplitHostPort(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	alias := map[string]string{"127.0.0.1": "localhost", "localhost": "127.0.0.1"}[host]
	if alias == "" {
		t.Skipf("no second name known for %s", host)
	}
	blobtest.RunCopySuite(t, blobtest.Streamed, func(t *testing.T) (blob.Driver, blob.Driver) {
		src := newDriver(t)
		cfg := testConfig(t)
		cfg.Endpoint = net.JoinHostPort(alias, port)
		dst, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		cleanupBucket(t, dst)
		return src, dst
	})
}

// TestCopySuiteMixed promotes between the embedded filesystem driver and
// MinIO, both ways: always streamed.
func TestCopySuiteMixed(t *testing.T) {
	testConfig(t)
	newFS := func(t *testing.T) blob.Driver {
		d, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Run("filesystem-to-minio", func(t *testing.T) {
		blobtest.RunCopySuite(t, blobtest.Streamed, func(t *testing.T) (blob.Driver, blob.Driver) {
			return newFS(t), newDriver(t)
		})
	})
	t.Run("minio-to-filesystem", func(t *testing.T) {
		blobtest.RunCopySuite(t, blobtest.Streamed, func(t *testing.T) (blob.Driver, blob.Driver) {
			return newDriver(t), newFS(t)
		})
	})
}

// TestCopyFromManyParts forces small copy parts so a Large object is copied
// in several concurrent ranges, and races several copies of it: exactly one
// may publish, the others get ErrExists, and no upload is left open.
func TestCopyFromManyParts(t *testing.T) {
	src, dst := newDriver(t), newDriver(t)
	dst.copyPartSize = minPartSize
	ctx := context.Background()
	s := blob.NewStore(src)
	payload := make([]byte, blobtest.Large+123)
	for i := range payload {
		payload[i] = byte(i * 7 / 3)
	}
	dgst := digest(payload)
	if _, err := s.PutBlob(ctx, dgst, bytes.NewReader(payload), int64(len(payload))); err != nil {
		t.Fatal(err)
	}
	key := blob.BlobKey(dgst)
	const n = 4
	oks := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { oks[i], errs[i] = dst.CopyFrom(ctx, src, key) })
	}
	wg.Wait()
	winners := 0
	for i := range n {
		switch {
		case errs[i] == nil && oks[i]:
			winners++
		case !errors.Is(errs[i], blob.ErrExists):
			t.Errorf("copy %d = %v, %v; want true, nil or ErrExists", i, oks[i], errs[i])
		}
	}
	if winners != 1 {
		t.Errorf("%d copies published, want exactly 1", winners)
	}
	blobtest.ExpectIntact(t, blob.NewStore(dst), dgst, int64(len(payload)))
	if ids := incompleteUploads(t, dst, key); len(ids) != 0 {
		t.Errorf("incomplete uploads left: %v", ids)
	}
}

// TestCopyJoinedSourceChanged checks the source pin: a copy whose source
// no longer has the expected ETag fails (not as ErrExists), is aborted and
// publishes nothing.
func TestCopyJoinedSourceChanged(t *testing.T) {
	src, dst := newDriver(t), newDriver(t)
	dst.copyPartSize = minPartSize
	ctx := context.Background()
	const key = "refs/pinned"
	if err := src.Put(ctx, key, bytes.NewReader(make([]byte, 2*minPartSize+1)), 2*minPartSize+1); err != nil {
		t.Fatal(err)
	}
	drain := func(r io.Reader, _ int64) error { _, err := io.Copy(io.Discard, r); return err }
	for _, verify := range []func(io.Reader, int64) error{nil, drain} {
		stale := []copySource{{key: key, size: 2*minPartSize + 1, etag: "0123456789abcdef0123456789abcdef"}}
		err := dst.copyJoined(ctx, src, stale, copyRanges(stale, dst.copyPartSize), key, verify)
		if err == nil || errors.Is(err, blob.ErrExists) {
			t.Fatalf("copyJoined (verify %v) with a stale ETag = %v, want a source-changed error", verify != nil, err)
		}
		if _, err := dst.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("after a failed copy Stat = %v, want ErrNotFound", err)
		}
		if ids := incompleteUploads(t, dst, key); len(ids) != 0 {
			t.Errorf("incomplete uploads left: %v", ids)
		}
	}
}

// TestCopyVerifiedVeto checks that the verifying read decides: a copy
// whose verify fails, at once or after reading everything, is aborted and
// publishes nothing, and its error is the one returned; a verify that
// passes sees exactly the source's bytes.
func TestCopyVerifiedVeto(t *testing.T) {
	src, dst := newDriver(t), newDriver(t)
	dst.copyPartSize = minPartSize
	ctx := context.Background()
	const key = "refs/vetoed"
	payload := bytes.Repeat([]byte("stagegate"), (2*minPartSize+7)/9)
	if err := src.Put(ctx, key, bytes.NewReader(payload), int64(len(payload))); err != nil {
		t.Fatal(err)
	}
	veto := errors.New("veto")
	cases := []struct {
		name   string
		verify func(io.Reader, int64) error
	}{
		{"at once", func(io.Reader, int64) error { return veto }},
		{"after reading", func(r io.Reader, _ int64) error {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
			return veto
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := dst.CopyVerifiedFrom(ctx, src, key, tc.verify)
			if !errors.Is(err, veto) || ok {
				t.Fatalf("CopyVerifiedFrom = %v, %v; want false, the veto", ok, err)
			}
			if _, err := dst.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("after a vetoed copy Stat = %v, want ErrNotFound", err)
			}
			if ids := incompleteUploads(t, dst, key); len(ids) != 0 {
				t.Errorf("incomplete uploads left: %v", ids)
			}
		})
	}
	var seen []byte
	ok, err := dst.CopyVerifiedFrom(ctx, src, key, func(r io.Reader, size int64) error {
		b, err := io.ReadAll(r)
		seen = b
		if int64(len(b)) != size {
			return fmt.Errorf("read %d bytes, size says %d", len(b), size)
		}
		return err
	})
	if err != nil || !ok {
		t.Fatalf("CopyVerifiedFrom = %v, %v", ok, err)
	}
	if !bytes.Equal(seen, payload) {
		t.Errorf("verify saw %d bytes that differ from the source's %d", len(seen), len(payload))
	}
	if got := mustRead(t, dst, key); !bytes.Equal(got, payload) {
		t.Errorf("copied object differs from the source")
	}
}

func mustRead(t *testing.T, d *Driver, key string) []byte {
	t.Helper()
	rc, _, err := d.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func digest(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}
