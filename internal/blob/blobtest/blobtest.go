// Package blobtest is the conformance suite every blob.Driver must pass, so
// the embedded filesystem driver and MinIO keep identical semantics
// (create-once, nothing visible after a failed upload, error sentinels).
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/internal/blob"
)

// Large is the size of the "large" cases: above the MinIO driver's default
// 8 MiB part size, so they exercise multipart uploads (several parts, and
// with an unknown size too).
const Large = 40 << 20

// RunDriverSuite runs every conformance case against a fresh driver from
// newDriver, which should clean up after itself with t.Cleanup. Large cases
// are skipped with -short.
func RunDriverSuite(t *testing.T, newDriver func(t *testing.T) blob.Driver) {
	t.Run("Driver", func(t *testing.T) { runDriverCases(t, newDriver) })
	t.Run("Store", func(t *testing.T) { runStoreCases(t, newDriver) })
	t.Run("Hygiene", func(t *testing.T) { runHygieneCases(t, newDriver) })
}

type driverCase struct {
	name  string
	large bool
	run   func(t *testing.T, d blob.Driver)
}

func runDriverCases(t *testing.T, newDriver func(t *testing.T) blob.Driver) {
	cases := []driverCase{
		{name: "RoundTrip", run: testRoundTrip},
		{name: "RoundTripLarge", large: true, run: testRoundTripLarge},
		{name: "CreateOnce", run: testCreateOnce},
		{name: "ConcurrentCreateOnce", run: func(t *testing.T, d blob.Driver) { testConcurrentCreateOnce(t, d, 16, 64<<10) }},
		{name: "ConcurrentCreateOnceLarge", large: true, run: func(t *testing.T, d blob.Driver) { testConcurrentCreateOnce(t, d, 4, Large/2) }},
		{name: "FailingReader", run: func(t *testing.T, d blob.Driver) { testFailingReader(t, d, 4<<10) }},
		{name: "FailingReaderLarge", large: true, run: func(t *testing.T, d blob.Driver) { testFailingReader(t, d, Large) }},
		{name: "WrongLength", run: testWrongLength},
		{name: "CanceledContext", run: testCanceledContext},
		{name: "NestedKeys", run: testNestedKeys},
		{name: "NotFound", run: testNotFound},
		{name: "Ping", run: func(t *testing.T, d blob.Driver) {
			if err := d.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}},
	}
	runCases(t, newDriver, cases)
}

func runCases(t *testing.T, newDriver func(t *testing.T) blob.Driver, cases []driverCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.large && testing.Short() {
				t.Skip("large case skipped with -short")
			}
			// Checked, as in production: drivers may assume valid keys.
			tc.run(t, blob.Checked(newDriver(t)))
		})
	}
}

// content is deterministic pseudo-random data: distinct seeds give distinct
// bytes, and large payloads can be regenerated instead of kept in memory.
func content(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func contentBytes(seed uint64, n int64) []byte {
	b, _ := io.ReadAll(content(seed, n))
	return b
}

func sum(t *testing.T, r io.Reader) (string, int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// get reads key whole and checks that Info agrees with the bytes.
func getSum(t *testing.T, d blob.Driver, key string) (string, int64) {
	t.Helper()
	rc, info, err := d.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	s, n := sum(t, rc)
	if info.Size != n {
		t.Errorf("Get(%q): Info.Size = %d, read %d bytes", key, info.Size, n)
	}
	return s, n
}

func mustGet(t *testing.T, d blob.Driver, key string) []byte {
	t.Helper()
	rc, _, err := d.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return b
}

func assertAbsent(t *testing.T, d blob.Driver, key string) {
	t.Helper()
	if info, err := d.Stat(context.Background(), key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", key, info, err)
	}
}

func sizeArg(n int64, known bool) int64 {
	if known {
		return n
	}
	return -1
}

func testRoundTrip(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		size  int64
		known bool
	}{
		{"empty", 0, true},
		{"empty-unknown-size", 0, false},
		{"one-byte", 1, true},
		{"small", 4 << 10, true},
		{"small-unknown-size", 4 << 10, false},
		{"megabytes", 3<<20 + 7, true},
		{"megabytes-unknown-size", 3<<20 + 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "roundtrip/" + tc.name
			want := contentBytes(1, tc.size)
			if err := d.Put(ctx, key, bytes.NewReader(want), sizeArg(tc.size, tc.known)); err != nil {
				t.Fatalf("Put: %v", err)
			}
			info, err := d.Stat(ctx, key)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if info.Size != tc.size || info.Key != key {
				t.Errorf("Stat = %+v, want size %d key %q", info, tc.size, key)
			}
			if got := mustGet(t, d, key); !bytes.Equal(got, want) {
				t.Errorf("Get returned %d bytes that differ from the %d put", len(got), len(want))
			}
		})
	}
}

func testRoundTripLarge(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	wantSum, _ := sum(t, content(2, Large))
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("known-size=%v", known), func(t *testing.T) {
			key := fmt.Sprintf("large/%v", known)
			if err := d.Put(ctx, key, content(2, Large), sizeArg(Large, known)); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got, n := getSum(t, d, key); got != wantSum || n != Large {
				t.Errorf("Get: %d bytes, sha256 %s; want %d bytes, %s", n, got, int64(Large), wantSum)
			}
		})
	}
	// Exactly a multiple of the part size: the read after the last full
	// part is empty, which must not become an extra part.
	t.Run("exact-part-multiple", func(t *testing.T) {
		const n = 32 << 20
		want, _ := sum(t, content(3, n))
		if err := d.Put(ctx, "large/exact", content(3, n), -1); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if got, size := getSum(t, d, "large/exact"); got != want || size != n {
			t.Errorf("Get: %d bytes, sha256 %s; want %d, %s", size, got, n, want)
		}
	})
}

func testCreateOnce(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	first, second := []byte("first"), []byte("second, longer")
	if err := d.Put(ctx, "once", bytes.NewReader(first), int64(len(first))); err != nil {
		t.Fatalf("first Put: %v", err)
	}
	for _, size := range []int64{int64(len(second)), -1} {
		err := d.Put(ctx, "once", bytes.NewReader(second), size)
		if !errors.Is(err, blob.ErrExists) {
			t.Fatalf("second Put (size %d) = %v, want ErrExists", size, err)
		}
	}
	if got := mustGet(t, d, "once"); !bytes.Equal(got, first) {
		t.Errorf("after second Put, Get = %q, want %q", got, first)
	}
}

// testConcurrentCreateOnce races n writers of different content on one key:
// exactly one may win and the stored bytes must be the winner's.
func testConcurrentCreateOnce(t *testing.T, d blob.Driver, n int, size int64) {
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("known-size=%v", known), func(t *testing.T) {
			ctx := context.Background()
			key := fmt.Sprintf("race/%v", known)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					errs[i] = d.Put(ctx, key, content(uint64(100+i), size), sizeArg(size, known))
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("writers %d and %d both succeeded", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, blob.ErrExists):
					t.Errorf("writer %d: %v, want nil or ErrExists", i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("no writer succeeded")
			}
			want, _ := sum(t, content(uint64(100+winner), size))
			if got, _ := getSum(t, d, key); got != want {
				t.Errorf("stored content is not writer %d's", winner)
			}
		})
	}
}

var errBoom = errors.New("blobtest: reader failed on purpose")

// failingReader returns errBoom after n bytes.
type failingReader struct {
	r io.Reader
	n int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBoom
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

func testFailingReader(t *testing.T, d blob.Driver, size int64) {
	ctx := context.Background()
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("known-size=%v", known), func(t *testing.T) {
			key := fmt.Sprintf("failing/%d/%v", size, known)
			r := &failingReader{r: content(4, size), n: size / 2}
			err := d.Put(ctx, key, r, sizeArg(size, known))
			if !errors.Is(err, errBoom) {
				t.Fatalf("Put = %v, want the reader's error", err)
			}
			assertAbsent(t, d, key)
			if err := d.Put(ctx, key, content(5, size), sizeArg(size, known)); err != nil {
				t.Fatalf("Put after failed Put: %v", err)
			}
			want, _ := sum(t, content(5, size))
			if got, _ := getSum(t, d, key); got != want {
				t.Errorf("stored content is not the second Put's")
			}
		})
	}
}

func testWrongLength(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		size, have int64
	}{
		{"short", 100, 50},
		{"long", 50, 100},
		{"empty-but-promised", 10, 0},
		{"promised-empty", 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "wrong-length/" + tc.name
			if err := d.Put(ctx, key, content(6, tc.have), tc.size); err == nil {
				t.Fatalf("Put of %d bytes with size %d succeeded", tc.have, tc.size)
			}
			assertAbsent(t, d, key)
		})
	}
}

func testCanceledContext(t *testing.T, d blob.Driver) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Put(ctx, "canceled", content(7, 1<<20), 1<<20); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	assertAbsent(t, d, "canceled")
}

func testNestedKeys(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	keys := []string{"a/b/c/d", "a/b/e", "a/f", "blobs/sha256/" + fmt.Sprintf("%064x", 1)}
	for _, k := range keys {
		if err := d.Put(ctx, k, bytes.NewReader([]byte(k)), int64(len(k))); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	for _, k := range keys {
		if got := mustGet(t, d, k); string(got) != k {
			t.Errorf("Get(%q) = %q", k, got)
		}
	}
	// A prefix of other keys is not an object.
	assertAbsent(t, d, "a/b")
	assertAbsent(t, d, "a")
}

func testNotFound(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	if _, _, err := d.Get(ctx, "missing/key"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	assertAbsent(t, d, "missing/key")
}

// --- Store cases ---

// onStore adapts a Store case to the driver it runs on.
func onStore(f func(t *testing.T, s *blob.Store)) func(t *testing.T, d blob.Driver) {
	return func(t *testing.T, d blob.Driver) { f(t, blob.NewStore(d)) }
}

func runStoreCases(t *testing.T, newDriver func(t *testing.T) blob.Driver) {
	cases := []driverCase{
		{name: "PutOpenBlob", run: onStore(func(t *testing.T, s *blob.Store) { testPutOpenBlob(t, s, 1<<20) })},
		{name: "PutOpenBlobLarge", large: true, run: onStore(func(t *testing.T, s *blob.Store) { testPutOpenBlob(t, s, Large) })},
		{name: "PutBlobIdempotent", run: onStore(testPutBlobIdempotent)},
		{name: "PutBlobConcurrent", run: onStore(testPutBlobConcurrent)},
		{name: "DigestMismatch", run: onStore(func(t *testing.T, s *blob.Store) { testDigestMismatch(t, s, 1<<20) })},
		{name: "DigestMismatchLarge", large: true, run: onStore(func(t *testing.T, s *blob.Store) { testDigestMismatch(t, s, Large) })},
		{name: "InvalidDigest", run: onStore(testInvalidDigest)},
		{name: "Objects", run: onStore(testObjects)},
		{name: "InvalidKeys", run: onStore(testInvalidKeys)},
		{name: "CorruptionDetected", run: testCorruptionDetected},
		{name: "BlobInParts", run: onStore(testBlobInParts)},
		{name: "BlobInPartsCorrupt", run: onStore(testBlobInPartsCorrupt)},
	}
	runCases(t, newDriver, cases)
}

func digestOf(t *testing.T, r io.Reader) v1.Hash {
	t.Helper()
	s, _ := sum(t, r)
	return v1.Hash{Algorithm: "sha256", Hex: s}
}

func testPutOpenBlob(t *testing.T, s *blob.Store, size int64) {
	ctx := context.Background()
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("known-size=%v", known), func(t *testing.T) {
			seed := uint64(10)
			if known {
				seed = 11
			}
			dgst := digestOf(t, content(seed, size))
			created, err := s.PutBlob(ctx, dgst, content(seed, size), sizeArg(size, known))
			if err != nil || !created {
				t.Fatalf("PutBlob = %v, %v; want true, nil", created, err)
			}
			if n, err := s.StatBlob(ctx, dgst); err != nil || n != size {
				t.Errorf("StatBlob = %d, %v; want %d", n, err, size)
			}
			if got, err := s.Driver().Stat(ctx, blob.BlobKey(dgst)); err != nil || got.Size != size {
				t.Errorf("blob not under BlobKey: %+v, %v", got, err)
			}
			rc, n, err := s.OpenBlob(ctx, dgst)
			if err != nil {
				t.Fatalf("OpenBlob: %v", err)
			}
			defer rc.Close()
			if n != size {
				t.Errorf("OpenBlob size = %d, want %d", n, size)
			}
			if got := digestOf(t, rc); got != dgst {
				t.Errorf("OpenBlob content digest = %s, want %s", got, dgst)
			}
		})
	}
}

// unreadable fails the test if read: PutBlob must not consume the body of a
// blob it already has.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("PutBlob read the body of an existing blob")
	return 0, errBoom
}

func testPutBlobIdempotent(t *testing.T, s *blob.Store) {
	ctx := context.Background()
	data := []byte("same bytes, same key")
	dgst := digestOf(t, bytes.NewReader(data))
	if created, err := s.PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data))); err != nil || !created {
		t.Fatalf("first PutBlob = %v, %v", created, err)
	}
	// A blob of unknown size, or over blob.SmallBlobSize, is looked up
	// before its body is read.
	if created, err := s.PutBlob(ctx, dgst, unreadable{t}, -1); err != nil || created {
		t.Errorf("repeated PutBlob (size -1) = %v, %v; want false, nil", created, err)
	}
	// A small one is read, verified and written create-once, which finds
	// it stored: no lookup first (issue #18).
	if created, err := s.PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data))); err != nil || created {
		t.Errorf("repeated small PutBlob = %v, %v; want false, nil", created, err)
	}
	// A size that contradicts the stored blob cannot be the same content.
	// One of the two is wrong: the upload is verified to tell which
	// (repair.go), and here it is the upload.
	longer := append(bytes.Clone(data), '!')
	if _, err := s.PutBlob(ctx, dgst, bytes.NewReader(longer), int64(len(longer))); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("PutBlob with a contradicting size = %v, want ErrDigestMismatch", err)
	}
	ExpectIntact(t, s, dgst, int64(len(data)))
}

func testPutBlobConcurrent(t *testing.T, s *blob.Store) {
	ctx := context.Background()
	const n, size = 8, 256 << 10
	dgst := digestOf(t, content(12, size))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for range n {
		wg.Go(func() {
			c, err := s.PutBlob(ctx, dgst, content(12, size), size)
			if err != nil {
				t.Errorf("PutBlob: %v", err)
			}
			if c {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d PutBlob calls reported created, want exactly 1", created)
	}
}

func testDigestMismatch(t *testing.T, s *blob.Store, size int64) {
	ctx := context.Background()
	dgst := digestOf(t, content(13, size))
	for _, tc := range []struct {
		name string
		body func() io.Reader
		size int64
	}{
		{"other-bytes", func() io.Reader { return content(14, size) }, size},
		{"other-bytes-unknown-size", func() io.Reader { return content(14, size) }, -1},
		{"truncated", func() io.Reader { return content(13, size-1) }, -1},
		{"extended", func() io.Reader { return io.MultiReader(content(13, size), bytes.NewReader([]byte{0})) }, -1},
		{"right-bytes-wrong-size", func() io.Reader { return content(13, size) }, size + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created, err := s.PutBlob(ctx, dgst, tc.body(), tc.size)
			if !errors.Is(err, blob.ErrDigestMismatch) || created {
				t.Fatalf("PutBlob = %v, %v; want false, ErrDigestMismatch", created, err)
			}
			if _, err := s.StatBlob(ctx, dgst); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("after mismatch StatBlob = %v, want ErrNotFound", err)
			}
		})
	}
	// Nothing left behind blocks the genuine upload.
	if created, err := s.PutBlob(ctx, dgst, content(13, size), size); err != nil || !created {
		t.Fatalf("PutBlob of the right bytes = %v, %v", created, err)
	}
}

func testInvalidDigest(t *testing.T, s *blob.Store) {
	ctx := context.Background()
	for _, h := range invalidDigests() {
		if _, err := s.PutBlob(ctx, h, unreadable{t}, 0); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("PutBlob(%q) = %v, want ErrInvalidKey", h, err)
		}
		if _, _, err := s.OpenBlob(ctx, h); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("OpenBlob(%q) = %v, want ErrInvalidKey", h, err)
		}
		if _, err := s.StatBlob(ctx, h); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("StatBlob(%q) = %v, want ErrInvalidKey", h, err)
		}
	}
}

// invalidDigests are digests the Store must refuse before touching a driver.
func invalidDigests() []v1.Hash {
	return []v1.Hash{
		{},
		{Algorithm: "sha512", Hex: fmt.Sprintf("%0128x", 1)},
		{Algorithm: "sha256", Hex: "abc"},
		{Algorithm: "sha256", Hex: fmt.Sprintf("%064X", 255)},
		{Algorithm: "sha256", Hex: "../../../../" + fmt.Sprintf("%052x", 1)},
	}
}

func testObjects(t *testing.T, s *blob.Store) {
	ctx := context.Background()
	key := "refs/team/model/1.2.3"
	data := []byte("sha256:" + fmt.Sprintf("%064x", 7))
	if err := s.PutObject(ctx, key, data); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if err := s.PutObject(ctx, key, []byte("other")); !errors.Is(err, blob.ErrExists) {
		t.Errorf("second PutObject = %v, want ErrExists", err)
	}
	got, err := s.GetObject(ctx, key, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("GetObject = %q, %v; want %q", got, err, data)
	}
	if _, err := s.GetObject(ctx, key, int64(len(data))-1); !errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("GetObject over the limit = %v, want ErrTooLarge", err)
	}
	if _, err := s.GetObject(ctx, "refs/missing", 10); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("GetObject(missing) = %v, want ErrNotFound", err)
	}
	if err := s.PutObject(ctx, "signatures/empty", nil); err != nil {
		t.Errorf("PutObject(empty): %v", err)
	}
	if got, err := s.GetObject(ctx, "signatures/empty", 0); err != nil || len(got) != 0 {
		t.Errorf("GetObject(empty) = %q, %v", got, err)
	}
}

func testInvalidKeys(t *testing.T, s *blob.Store) {
	ctx := context.Background()
	d := s.Driver()
	for _, key := range []string{"", "/abs", "a/../b", "..", "a/./b", "a//b", "a/", `a\b`, "a\x00b", "a\nb", ".tmp/x", "a/.hidden"} {
		if err := s.PutObject(ctx, key, []byte("x")); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("PutObject(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.GetObject(ctx, key, 10); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("GetObject(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := d.Stat(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
}

// corrupting flips one byte of everything read through Get, standing in for
// bit rot or tampering in the bucket.
type corrupting struct{ blob.Driver }

func (c corrupting) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	rc, info, err := c.Driver.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, info, err
	}
	if len(b) > 0 {
		b[len(b)/2] ^= 0xff
	}
	return io.NopCloser(bytes.NewReader(b)), info, nil
}

func testCorruptionDetected(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	data := contentBytes(15, 64<<10)
	dgst := digestOf(t, bytes.NewReader(data))
	if _, err := blob.NewStore(d).PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	ExpectCorrupt(t, blob.NewStore(corrupting{d}), dgst)
}

// ExpectCorrupt asserts that reading the blob dgst through s to the end
// fails with ErrDigestMismatch. Driver tests use it after damaging the
// stored bytes in a backend-specific way.
func ExpectCorrupt(t *testing.T, s *blob.Store, dgst v1.Hash) {
	t.Helper()
	rc, _, err := s.OpenBlob(context.Background(), dgst)
	if err != nil {
		t.Fatalf("OpenBlob: %v", err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("reading a corrupted blob: %v, want ErrDigestMismatch", err)
	}
}
