package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// Repair: a blob whose stored bytes no longer hash to its key stays corrupt
// until someone writes the right bytes over it, which create-once forbids.
// These Store methods are the narrow exception: they replace a blob only
// with bytes verified on the way in (a Replacer publishes nothing before
// the verifier has seen EOF), so a replacement can never make a blob worse.

// VerifyBlob re-hashes the stored blob dgst (its parts when it is kept in
// parts and blobs/sha256/<hex> is absent), streamed (bounded memory), and
// returns its stored size. The error wraps ErrDigestMismatch when the bytes
// or their length are wrong, ErrNotFound when it is absent.
func (s *Store) VerifyBlob(ctx context.Context, dgst v1.Hash) (int64, error) {
	if err := checkDigest(dgst); err != nil {
		return 0, err
	}
	rc, info, err := s.d.Get(ctx, BlobKey(dgst))
	if errors.Is(err, ErrNotFound) {
		if doc, perr := s.readParts(ctx, dgst); perr == nil {
			return s.verifyParts(ctx, dgst, doc)
		} else if !errors.Is(perr, ErrNotFound) {
			return 0, perr
		}
	}
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, ContextReader{Ctx: ctx, R: rc})
	if err != nil {
		return info.Size, fmt.Errorf("blob: verify %s: %w", dgst, err)
	}
	if n != info.Size {
		return info.Size, fmt.Errorf("%w: %s: read %d bytes, stored size %d", ErrDigestMismatch, dgst, n, info.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != dgst.Hex {
		return info.Size, fmt.Errorf("%w: %s hashes to sha256:%s", ErrDigestMismatch, dgst, got)
	}
	return info.Size, nil
}

// MarkCorrupt records that the blob dgst failed verification (scrub), so
// that the next upload of dgst is verified and replaces it even when its
// size looks right. Marking twice is not an error.
func (s *Store) MarkCorrupt(ctx context.Context, dgst v1.Hash, why string, now time.Time) error {
	if err := checkDigest(dgst); err != nil {
		return err
	}
	note := now.UTC().Format(time.RFC3339) + " " + why
	if len(note) > 1024 {
		note = note[:1024]
	}
	err := s.PutObject(ctx, registry.CorruptMarkKey(dgst), []byte(note))
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

// RepairBlob stores r's bytes as the blob dgst, replacing a stored blob
// that is corrupt (or missing). The bytes are verified while they stream;
// on a mismatch nothing changes and the error wraps ErrDigestMismatch. A
// stored blob that verifies is left alone (replaced=false) and r is not
// read. Clears scrub's mark.
func (s *Store) RepairBlob(ctx context.Context, dgst v1.Hash, r io.Reader, size int64) (replaced bool, err error) {
	if _, err := s.VerifyBlob(ctx, dgst); err == nil {
		return false, s.clearMark(ctx, dgst)
	} else if !errors.Is(err, ErrDigestMismatch) && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if err := s.replace(ctx, dgst, r, size); err != nil {
		return false, err
	}
	return true, nil
}

// suspect decides, for a PutBlob of dgst that found the blob stored with
// storedSize, whether the stored blob must be replaced by the upload
// (verified first) instead of short-circuiting. The cheap tests only: a
// stored size that differs from the uploader's (bytes with this digest have
// one length, so one of the two is wrong and the verifier tells which), or
// scrub's mark. An upload of unknown size over an unmarked blob is trusted,
// as before: re-hashing every stored blob on every repeated upload would
// cost what the short-circuit saves.
func (s *Store) suspect(ctx context.Context, dgst v1.Hash, storedSize, claimed int64) bool {
	if !Has[Replacer](s.d) {
		return false
	}
	if claimed >= 0 && claimed != storedSize {
		return true
	}
	_, err := s.d.Stat(ctx, registry.CorruptMarkKey(dgst))
	return err == nil
}

// replace streams r through a verifier over the blob dgst. created is
// reported as true: the bytes under the key are new.
func (s *Store) replace(ctx context.Context, dgst v1.Hash, r io.Reader, size int64) error {
	rp, ok := s.d.(Replacer)
	if !ok {
		return noCapability("replace objects")
	}
	if err := rp.Replace(ctx, BlobKey(dgst), newVerifier(r, dgst, size), size); err != nil {
		return err
	}
	return s.clearMark(ctx, dgst)
}

func (s *Store) clearMark(ctx context.Context, dgst v1.Hash) error {
	d, ok := s.d.(Deleter)
	if !ok {
		return nil
	}
	if err := d.Delete(ctx, registry.CorruptMarkKey(dgst)); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("blob: clear scrub mark of %s: %w", dgst, err)
	}
	return nil
}

// ContextReader stops a long read or copy when the caller gives up (ctx
// ends): io.Copy and hashing loops have no context of their own.
type ContextReader struct {
	Ctx context.Context
	R   io.Reader
}

func (c ContextReader) Read(p []byte) (int, error) {
	if err := c.Ctx.Err(); err != nil {
		return 0, err
	}
	return c.R.Read(p)
}
