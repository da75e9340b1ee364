package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/registry"
)

// Blobs kept in parts (internal/blob/parts.go): the chunks of an OCI
// upload, stored under uploads/, become a blob where they lie.

// partsSizes is a blob of three chunks, over blob.SmallBlobSize so that
// PutBlob looks it up before reading a body.
var partsSizes = []int64{600 << 10, 500 << 10, 123}

// linkParts stores content(seed, sum of sizes) as staged chunks of sizes
// and links them as its blob. bad, when >= 0, is a chunk stored with other
// bytes of the same length; missing, when >= 0, a chunk never stored.
func linkParts(t *testing.T, s *blob.Store, seed uint64, sizes []int64, bad, missing int) blobDigest {
	t.Helper()
	ctx := context.Background()
	var total int64
	for _, n := range sizes {
		total += n
	}
	data := contentBytes(seed, total)
	dgst := digestOf(t, bytes.NewReader(data))
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	var parts []blob.Part
	var off int64
	for i, n := range sizes {
		key := registry.UploadKey(id, fmt.Sprintf("%020d.data", off))
		chunk := data[off : off+n]
		if i == bad {
			chunk = contentBytes(seed+1000, n)
		}
		if i != missing {
			if _, err := s.PutStaged(ctx, key, bytes.NewReader(chunk), n); err != nil {
				t.Fatalf("PutStaged %s: %v", key, err)
			}
		}
		parts = append(parts, blob.Part{Key: key, Size: n})
		off += n
	}
	created, err := s.LinkBlob(ctx, dgst, total, parts)
	if err != nil || !created {
		t.Fatalf("LinkBlob = %v, %v; want true, nil", created, err)
	}
	return blobDigest{dgst: dgst, seed: seed, size: total}
}

func testBlobInParts(t *testing.T, s *blob.Store) {
	ctx := context.Background()
	b := linkParts(t, s, 40, partsSizes, -1, -1)
	assertAbsent(t, s.Driver(), blob.BlobKey(b.dgst))
	if _, err := s.Driver().Stat(ctx, registry.PartsKey(b.dgst)); err != nil {
		t.Fatalf("no parts object: %v", err)
	}
	if n, err := s.StatBlob(ctx, b.dgst); err != nil || n != b.size {
		t.Errorf("StatBlob = %d, %v; want %d", n, err, b.size)
	}
	expectBlob(t, s, b)
	if n, err := s.VerifyBlob(ctx, b.dgst); err != nil || n != b.size {
		t.Errorf("VerifyBlob = %d, %v; want %d, nil", n, err, b.size)
	}
	if parts, err := s.PartsOf(ctx, b.dgst); err != nil || len(parts) != len(partsSizes) {
		t.Errorf("PartsOf = %v, %v", parts, err)
	}

	// Stored: another link, or an upload, writes nothing and reads nothing.
	if created, err := s.LinkBlob(ctx, b.dgst, b.size, []blob.Part{{Key: registry.UploadKey("0123456789abcdef0123456789abcdef", "x.data"), Size: b.size}}); err != nil || created {
		t.Errorf("second LinkBlob = %v, %v; want false, nil", created, err)
	}
	for _, size := range []int64{-1, b.size} {
		if created, err := s.PutBlob(ctx, b.dgst, unreadable{t}, size); err != nil || created {
			t.Errorf("PutBlob(size %d) of a blob in parts = %v, %v; want false, nil", size, created, err)
		}
	}
	if _, err := s.PutBlob(ctx, b.dgst, content(99, b.size+1), b.size+1); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("PutBlob with a contradicting size = %v, want ErrDigestMismatch", err)
	}
	expectBlob(t, s, b)

	// Lists that cannot be the blob.
	other := digestOf(t, content(41, 10))
	for name, parts := range map[string][]blob.Part{
		"outside uploads": {{Key: "blobs/sha256/" + other.Hex, Size: 10}},
		"traversal":       {{Key: "uploads/../refs/x", Size: 10}},
		"empty part":      {{Key: registry.UploadKey("0123456789abcdef0123456789abcdef", "a"), Size: 0}, {Key: registry.UploadKey("0123456789abcdef0123456789abcdef", "b"), Size: 10}},
		"none":            nil,
	} {
		if _, err := s.LinkBlob(ctx, other, 10, parts); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("LinkBlob, %s = %v, want ErrInvalidKey", name, err)
		}
	}
	if _, err := s.LinkBlob(ctx, other, 11, []blob.Part{{Key: registry.UploadKey("0123456789abcdef0123456789abcdef", "a"), Size: 10}}); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("LinkBlob with sizes that do not add up = %v, want ErrDigestMismatch", err)
	}
	assertAbsent(t, s.Driver(), registry.PartsKey(other))
}

// testBlobInPartsCorrupt: a chunk changed or lost after the link is found
// by every read, and the right bytes uploaded again repair the blob.
func testBlobInPartsCorrupt(t *testing.T, s *blob.Store) {
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		bad, missing int
		seed         uint64
	}{
		{name: "changed", bad: 1, missing: -1, seed: 42},
		{name: "missing", bad: -1, missing: 2, seed: 43},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := linkParts(t, s, tc.seed, partsSizes, tc.bad, tc.missing)
			rc, _, err := s.OpenBlob(ctx, b.dgst)
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err == nil {
				t.Fatal("OpenBlob of a damaged blob in parts read to EOF")
			}
			if _, err := s.VerifyParts(ctx, b.dgst); !errors.Is(err, blob.ErrDigestMismatch) {
				t.Errorf("VerifyParts = %v, want ErrDigestMismatch", err)
			}
			if !blob.Has[blob.Replacer](s.Driver()) {
				return
			}
			if err := s.MarkCorrupt(ctx, b.dgst, "test", time.Now()); err != nil {
				t.Fatal(err)
			}
			if created, err := s.PutBlob(ctx, b.dgst, content(b.seed, b.size), b.size); err != nil || !created {
				t.Fatalf("PutBlob over a marked blob in parts = %v, %v; want true, nil", created, err)
			}
			expectBlob(t, s, b)
		})
	}
}

// testCopyFromParts: promotion of a blob kept in parts copies it,
// verified, to the target's content-addressed key: joined by the backend
// where the pair copies server-side and every piece but the last has the
// 5 MiB an S3 multipart part needs, streamed otherwise. A damaged piece
// leaves nothing in the target either way.
func testCopyFromParts(t *testing.T, src, dst *blob.Store, path CopyPath) {
	ctx := context.Background()
	cases := []struct {
		name   string
		sizes  []int64
		joined bool // the backend joins the pieces
	}{
		{"small pieces", partsSizes, false},
		{"joinable pieces", []int64{5<<20 + 1, 5 << 20, 123}, path == ServerSide},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed := uint64(44 + 10*i)
			b := linkParts(t, src, seed, tc.sizes, -1, -1)
			calls := 0
			copied, err := dst.CopyBlobWhen(ctx, src, b.dgst, func(_ context.Context, verified bool) error {
				calls++
				if verified != tc.joined {
					t.Errorf("ready told verified=%v, want %v (joined by the backend: %v)", verified, tc.joined, tc.joined)
				}
				return nil
			})
			if err != nil || !copied || calls != 1 {
				t.Fatalf("CopyBlobWhen = %v, %v after %d ready calls; want true, nil, 1", copied, err, calls)
			}
			if _, err := dst.Driver().Stat(ctx, blob.BlobKey(b.dgst)); err != nil {
				t.Errorf("the target has no blobs/ key: %v", err)
			}
			expectBlob(t, dst, b)
			if copied, err := dst.CopyBlob(ctx, src, b.dgst); err != nil || copied {
				t.Errorf("second CopyBlob = %v, %v; want false, nil", copied, err)
			}
			for _, damaged := range []int{0, len(tc.sizes) - 1} {
				bad := linkParts(t, src, seed+1+uint64(damaged), tc.sizes, damaged, -1)
				if _, err := dst.CopyBlob(ctx, src, bad.dgst); !errors.Is(err, blob.ErrDigestMismatch) {
					t.Errorf("CopyBlob with piece %d damaged = %v, want ErrDigestMismatch", damaged, err)
				}
				assertAbsent(t, dst.Driver(), blob.BlobKey(bad.dgst))
			}
		})
	}
}
