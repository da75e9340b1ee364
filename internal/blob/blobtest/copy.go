package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/internal/blob"
)

// CopyPath is how a pair of drivers is expected to copy: by the destination
// driver itself (blob.Copier reports ok) or streamed through the Store.
type CopyPath int

const (
	// Streamed pairs have no server-side path: different driver types,
	// servers, credentials or filesystems.
	Streamed CopyPath = iota
	// ServerSide pairs must copy without the Store's help (MinIO
	// server-side copy with one credential, hard links on one filesystem).
	ServerSide
)

func (p CopyPath) String() string {
	if p == ServerSide {
		return "server-side"
	}
	return "streamed"
}

// RunCopySuite checks promotion copies (Store.CopyBlob, Store.CopyObject and
// the blob.Copier capability) between the two fresh drivers newPair returns,
// source first. path is the copy path the pair must take; the suite asserts
// it, so a pair that silently falls back to streaming (or copies where it
// should not) fails. Large cases are skipped with -short.
func RunCopySuite(t *testing.T, path CopyPath, newPair func(t *testing.T) (src, dst blob.Driver)) {
	cases := []struct {
		name  string
		large bool
		run   func(t *testing.T, src, dst *blob.Store)
	}{
		{name: "Path", run: func(t *testing.T, src, dst *blob.Store) { testCopyPath(t, src, dst, path) }},
		{name: "RoundTrip", run: testCopyRoundTrip},
		{name: "RoundTripLarge", large: true, run: func(t *testing.T, src, dst *blob.Store) { testCopyBlob(t, src, dst, 20, Large) }},
		{name: "AlreadyThere", run: testCopyAlreadyThere},
		{name: "SizeConflict", run: testCopySizeConflict},
		{name: "MissingSource", run: testCopyMissingSource},
		{name: "Concurrent", run: func(t *testing.T, src, dst *blob.Store) { testCopyConcurrent(t, src, dst, 8, 1<<20) }},
		{name: "ConcurrentLarge", large: true, run: func(t *testing.T, src, dst *blob.Store) { testCopyConcurrent(t, src, dst, 4, Large) }},
		{name: "CorruptSourceStreamed", run: testCopyCorruptSource},
		{name: "CorruptStoredSource", run: func(t *testing.T, src, dst *blob.Store) { testCopyCorruptStored(t, src, dst, 256<<10) }},
		{name: "CorruptStoredSourceLarge", large: true, run: func(t *testing.T, src, dst *blob.Store) { testCopyCorruptStored(t, src, dst, Large) }},
		{name: "Held", run: func(t *testing.T, src, dst *blob.Store) { testCopyHeld(t, src, dst, path) }},
		{name: "InvalidDigest", run: testCopyInvalidDigest},
		{name: "Objects", run: testCopyObjects},
		{name: "FromParts", run: func(t *testing.T, src, dst *blob.Store) { testCopyFromParts(t, src, dst, path) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.large && testing.Short() {
				t.Skip("large case skipped with -short")
			}
			src, dst := newPair(t)
			tc.run(t, blob.NewStore(src), blob.NewStore(dst))
		})
	}
}

// blobDigest is a stored blob and how to regenerate its content.
type blobDigest struct {
	dgst v1.Hash
	seed uint64
	size int64
}

// putSrc stores content(seed, size) as a blob in s and returns its digest.
func putSrc(t *testing.T, s *blob.Store, seed uint64, size int64) blobDigest {
	t.Helper()
	dgst := digestOf(t, content(seed, size))
	if _, err := s.PutBlob(context.Background(), dgst, content(seed, size), size); err != nil {
		t.Fatalf("PutBlob into the source: %v", err)
	}
	return blobDigest{dgst: dgst, seed: seed, size: size}
}

// expectBlob reads the blob back through OpenBlob's verifying reader to
// EOF and compares it with the content it was made from.
func expectBlob(t *testing.T, s *blob.Store, b blobDigest) {
	t.Helper()
	rc, n, err := s.OpenBlob(context.Background(), b.dgst)
	if err != nil {
		t.Fatalf("OpenBlob in the target: %v", err)
	}
	defer rc.Close()
	if n != b.size {
		t.Errorf("target size = %d, want %d", n, b.size)
	}
	got, gotN := sum(t, rc) // fails the test on ErrDigestMismatch
	if want, _ := sum(t, content(b.seed, b.size)); got != want || gotN != b.size {
		t.Errorf("target holds %d bytes with sha256 %s, want %d bytes with %s", gotN, got, b.size, want)
	}
}

// testCopyPath calls the Copier capability directly, through Checked as the
// Store does, and checks that the pair takes the path it claims.
func testCopyPath(t *testing.T, src, dst *blob.Store, path CopyPath) {
	ctx := context.Background()
	b := putSrc(t, src, 21, 3<<20+5)
	key := blob.BlobKey(b.dgst)
	cp, ok := dst.Driver().(blob.Copier)
	if !ok {
		t.Fatalf("Store.Driver() does not forward blob.Copier")
	}
	done, err := cp.CopyFrom(ctx, src.Driver(), key)
	if err != nil {
		t.Fatalf("CopyFrom: %v", err)
	}
	if got := map[bool]CopyPath{true: ServerSide, false: Streamed}[done]; got != path {
		t.Fatalf("CopyFrom ok=%v: pair copies %s, want %s", done, got, path)
	}
	if !done {
		// Nothing may have been written when the driver declined.
		assertAbsent(t, dst.Driver(), key)
		return
	}
	expectBlob(t, dst, b)
	// A second server-side copy is create-once like Put.
	if _, err := cp.CopyFrom(ctx, src.Driver(), key); !errors.Is(err, blob.ErrExists) {
		t.Errorf("second CopyFrom = %v, want ErrExists", err)
	}
	if _, err := cp.CopyFrom(ctx, src.Driver(), "blobs/sha256/missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("CopyFrom(missing) = %v, want ErrNotFound", err)
	}
}

func testCopyRoundTrip(t *testing.T, src, dst *blob.Store) {
	for _, size := range []int64{0, 1, 1<<20 + 3} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			testCopyBlob(t, src, dst, 22+uint64(size%7), size)
		})
	}
}

func testCopyBlob(t *testing.T, src, dst *blob.Store, seed uint64, size int64) {
	ctx := context.Background()
	b := putSrc(t, src, seed, size)
	copied, err := dst.CopyBlob(ctx, src, b.dgst)
	if err != nil || !copied {
		t.Fatalf("CopyBlob = %v, %v; want true, nil", copied, err)
	}
	expectBlob(t, dst, b)
	expectBlob(t, src, b) // the source is untouched
	copied, err = dst.CopyBlob(ctx, src, b.dgst)
	if err != nil || copied {
		t.Errorf("repeated CopyBlob = %v, %v; want false, nil", copied, err)
	}
}

func testCopyAlreadyThere(t *testing.T, src, dst *blob.Store) {
	ctx := context.Background()
	b := putSrc(t, src, 23, 64<<10)
	if _, err := dst.PutBlob(ctx, b.dgst, content(b.seed, b.size), b.size); err != nil {
		t.Fatalf("PutBlob into the target: %v", err)
	}
	copied, err := dst.CopyBlob(ctx, src, b.dgst)
	if err != nil || copied {
		t.Fatalf("CopyBlob onto an existing blob = %v, %v; want false, nil", copied, err)
	}
	expectBlob(t, dst, b)
}

// testCopySizeConflict plants an object of the wrong size under the blob
// key in the target (a damaged bucket): CopyBlob must report it, not
// pretend the blob was promoted.
func testCopySizeConflict(t *testing.T, src, dst *blob.Store) {
	ctx := context.Background()
	b := putSrc(t, src, 24, 4<<10)
	key := blob.BlobKey(b.dgst)
	if err := dst.Driver().Put(ctx, key, bytes.NewReader([]byte("junk")), 4); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if copied, err := dst.CopyBlob(ctx, src, b.dgst); !errors.Is(err, blob.ErrDigestMismatch) || copied {
		t.Fatalf("CopyBlob onto a wrong-size object = %v, %v; want false, ErrDigestMismatch", copied, err)
	}
}

func testCopyMissingSource(t *testing.T, src, dst *blob.Store) {
	ctx := context.Background()
	dgst := digestOf(t, content(25, 10))
	if copied, err := dst.CopyBlob(ctx, src, dgst); !errors.Is(err, blob.ErrNotFound) || copied {
		t.Fatalf("CopyBlob of a missing blob = %v, %v; want false, ErrNotFound", copied, err)
	}
	if _, err := dst.StatBlob(ctx, dgst); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("after a failed copy StatBlob = %v, want ErrNotFound", err)
	}
}

// testCopyConcurrent races n promotions of one blob into one target: all
// succeed, exactly one reports the copy, and the bytes are right.
func testCopyConcurrent(t *testing.T, src, dst *blob.Store, n int, size int64) {
	ctx := context.Background()
	b := putSrc(t, src, 26, size)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		copied int
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			c, err := dst.CopyBlob(ctx, src, b.dgst)
			if err != nil {
				t.Errorf("CopyBlob: %v", err)
			}
			if c {
				mu.Lock()
				copied++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if copied != 1 {
		t.Errorf("%d concurrent CopyBlob calls reported a copy, want exactly 1", copied)
	}
	expectBlob(t, dst, b)
}

// testCopyCorruptSource promotes from a source whose reads are damaged.
// The wrapper hides the driver's type, so even a server-side pair streams,
// and the streamed path must refuse the bytes and leave nothing behind.
func testCopyCorruptSource(t *testing.T, src, dst *blob.Store) {
	ctx := context.Background()
	b := putSrc(t, src, 27, 256<<10)
	bad := blob.NewStore(corrupting{src.Driver()})
	if copied, err := dst.CopyBlob(ctx, bad, b.dgst); !errors.Is(err, blob.ErrDigestMismatch) || copied {
		t.Fatalf("CopyBlob from a corrupt source = %v, %v; want false, ErrDigestMismatch", copied, err)
	}
	if _, err := dst.StatBlob(ctx, b.dgst); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("after a refused copy StatBlob = %v, want ErrNotFound", err)
	}
	// The genuine source still promotes.
	if copied, err := dst.CopyBlob(ctx, src, b.dgst); err != nil || !copied {
		t.Fatalf("CopyBlob from the genuine source = %v, %v", copied, err)
	}
	expectBlob(t, dst, b)
}

// testCopyCorruptStored promotes a blob whose stored bytes no longer match
// its digest (same size, written over its key behind the Store's back), on
// the pair's own path: a server-side copy must verify too. The copy fails
// with ErrDigestMismatch and nothing is visible at the target key.
func testCopyCorruptStored(t *testing.T, src, dst *blob.Store, size int64) {
	ctx := context.Background()
	b := putSrc(t, src, 29, size)
	key := blob.BlobKey(b.dgst)
	bad := contentBytes(30, size)
	rp, ok := src.Driver().(blob.Replacer)
	if !ok {
		t.Skip("the source driver cannot replace an object, so it cannot be corrupted here")
	}
	if err := rp.Replace(ctx, key, bytes.NewReader(bad), size); err != nil {
		t.Fatalf("Replace with corrupt bytes: %v", err)
	}
	if copied, err := dst.CopyBlob(ctx, src, b.dgst); !errors.Is(err, blob.ErrDigestMismatch) || copied {
		t.Fatalf("CopyBlob of a corrupt stored blob = %v, %v; want false, ErrDigestMismatch", copied, err)
	}
	assertAbsent(t, dst.Driver(), key)
}

// testCopyHeld checks CopyBlobWhen: a refusal from ready leaves nothing at
// the target key and is the error returned; a copy whose ready waits for a
// verdict is published once the verdict allows it. ready's verified flag is
// a promise a promotion's integrity gate relies on instead of reading the
// source itself, so a corrupt source must never be reported verified.
func testCopyHeld(t *testing.T, src, dst *blob.Store, path CopyPath) {
	ctx := context.Background()
	b := putSrc(t, src, 31, 6<<20)
	veto := errors.New("gates refused")
	calls := 0
	copied, err := dst.CopyBlobWhen(ctx, src, b.dgst, func(context.Context, bool) error { calls++; return veto })
	if !errors.Is(err, veto) || copied || calls != 1 {
		t.Fatalf("CopyBlobWhen refused = %v, %v after %d ready calls; want false, the refusal, 1 call", copied, err, calls)
	}
	assertAbsent(t, dst.Driver(), blob.BlobKey(b.dgst))

	bad := blob.NewStore(corrupting{src.Driver()})
	_, err = dst.CopyBlobWhen(ctx, bad, b.dgst, func(_ context.Context, verified bool) error {
		if verified {
			t.Error("ready was told a corrupt source's bytes were verified")
		}
		return nil
	})
	if !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("CopyBlobWhen from a corrupt source = %v, want ErrDigestMismatch", err)
	}
	assertAbsent(t, dst.Driver(), blob.BlobKey(b.dgst))

	verdict := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := dst.CopyBlobWhen(ctx, src, b.dgst, func(ctx context.Context, verified bool) error {
			if verified && path != ServerSide {
				t.Error("a streamed copy claimed its bytes were verified before they were read")
			}
			select {
			case <-verdict:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		done <- err
	}()
	close(verdict)
	if err := <-done; err != nil {
		t.Fatalf("CopyBlobWhen allowed = %v", err)
	}
	expectBlob(t, dst, b)
}

func testCopyInvalidDigest(t *testing.T, src, dst *blob.Store) {
	for _, h := range invalidDigests() {
		if _, err := dst.CopyBlob(context.Background(), src, h); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("CopyBlob(%q) = %v, want ErrInvalidKey", h, err)
		}
	}
}

func testCopyObjects(t *testing.T, src, dst *blob.Store) {
	ctx := context.Background()
	key := "refs/team/model/-/1.2.3"
	data := []byte("sha256:" + fmt.Sprintf("%064x", 9))
	if err := src.PutObject(ctx, key, data); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if err := dst.CopyObject(ctx, src, key); err != nil {
		t.Fatalf("CopyObject: %v", err)
	}
	if got, err := dst.GetObject(ctx, key, 1<<10); err != nil || !bytes.Equal(got, data) {
		t.Errorf("GetObject after copy = %q, %v; want %q", got, err, data)
	}
	if err := dst.CopyObject(ctx, src, key); !errors.Is(err, blob.ErrExists) {
		t.Errorf("second CopyObject = %v, want ErrExists", err)
	}
	if err := dst.CopyObject(ctx, src, "refs/team/model/-/missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("CopyObject(missing) = %v, want ErrNotFound", err)
	}
	if err := dst.CopyObject(ctx, src, "../escape"); !errors.Is(err, blob.ErrInvalidKey) {
		t.Errorf("CopyObject(invalid key) = %v, want ErrInvalidKey", err)
	}
	if err := src.PutObject(ctx, "signatures/empty", nil); err != nil {
		t.Fatalf("PutObject(empty): %v", err)
	}
	if err := dst.CopyObject(ctx, src, "signatures/empty"); err != nil {
		t.Fatalf("CopyObject(empty): %v", err)
	}
	if got, err := dst.GetObject(ctx, "signatures/empty", 0); err != nil || len(got) != 0 {
		t.Errorf("GetObject(empty) after copy = %q, %v", got, err)
	}
}

// ExpectIntact asserts that the blob dgst reads back through s to the end
// with size bytes and no ErrDigestMismatch from OpenBlob's verifying reader.
func ExpectIntact(t *testing.T, s *blob.Store, dgst v1.Hash, size int64) {
	t.Helper()
	rc, n, err := s.OpenBlob(context.Background(), dgst)
	if err != nil {
		t.Fatalf("OpenBlob: %v", err)
	}
	defer rc.Close()
	got, err := io.Copy(io.Discard, rc)
	if err != nil {
		t.Fatalf("reading blob %s: %v", dgst, err)
	}
	if n != size || got != size {
		t.Errorf("blob %s: size %d, read %d bytes; want %d", dgst, n, got, size)
	}
}
