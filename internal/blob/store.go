package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// Store layers content addressing and digest verification over a Driver.
// Callers never build blob keys or compare digests themselves, so a blob
// that is visible under blobs/sha256/<hex> always held exactly those bytes
// when it was written, and reads detect later corruption.
type Store struct {
	d Driver
}

// NewStore returns a Store over d. Keys are validated (Checked) whatever the
// driver, so a bug elsewhere cannot write outside the layout.
func NewStore(d Driver) *Store {
	return &Store{d: Checked(d)}
}

// Driver returns the key-validating driver the Store writes through, for
// callers that need raw keys (listing, promotion copies).
func (s *Store) Driver() Driver { return s.d }

// BlobKey is the key of the blob with digest dgst (registry/layout.go).
func BlobKey(dgst v1.Hash) string { return registry.BlobKey(dgst) }

// checkDigest refuses anything but sha256 with 64 lowercase hex digits: the
// key is derived from it and the verifier only knows sha256.
func checkDigest(dgst v1.Hash) error {
	if dgst.Algorithm != "sha256" || len(dgst.Hex) != sha256.Size*2 {
		return fmt.Errorf("%w: digest %q is not sha256:<64 hex>", ErrInvalidKey, dgst.String())
	}
	for _, c := range dgst.Hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w: digest %q is not lowercase hex", ErrInvalidKey, dgst.String())
		}
	}
	return nil
}

// PutBlob streams r to the blob key of dgst in one pass, hashing as it
// writes. When the bytes do not hash to dgst, or their length differs from
// size (size >= 0; -1 means unknown), the upload is aborted, nothing becomes
// visible and the error wraps ErrDigestMismatch. created is false when the
// blob was already stored: the key is derived from the content, so the bytes
// are the same, and r is then not read at all (or only partly, when another
// writer won a race) unless the blob is small (SmallBlobSize), when r is
// read and verified first and the create-once write finds it stored.
func (s *Store) PutBlob(ctx context.Context, dgst v1.Hash, r io.Reader, size int64) (created bool, err error) {
	if err := checkDigest(dgst); err != nil {
		return false, err
	}
	if size >= 0 && size <= SmallBlobSize {
		return s.putSmall(ctx, dgst, r, size)
	}
	key := BlobKey(dgst)
	if info, err := s.d.Stat(ctx, key); err == nil {
		if s.suspect(ctx, dgst, info.Size, size) {
			// The stored blob may be corrupt (repair.go): verified bytes replace it.
			err := s.replace(ctx, dgst, r, size)
			return err == nil, err
		}
		return false, sameSize(dgst, info.Size, size)
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if doc, err := s.readParts(ctx, dgst); err == nil {
		// Kept in parts (a chunked upload). Unless those look wrong, they
		// are the bytes: nothing to write.
		if !s.suspect(ctx, dgst, doc.Size, size) {
			return false, sameSize(dgst, doc.Size, size)
		}
	} else if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrDigestMismatch) {
		return false, err
	}
	return s.putVerified(ctx, dgst, r, size)
}

// SmallBlobSize is the largest blob PutBlob writes without asking first
// whether it is stored: below it, the existence check (a storage round
// trip) costs more than sending the bytes, and the create-once write
// answers the question anyway.
const SmallBlobSize = 1 << 20

// putSmall is PutBlob for a blob of known size up to SmallBlobSize: read
// and verified in memory, then written with the driver's create-once Put.
// ErrExists means the blob is already stored; only then is it looked at
// (size check, and the repair of a suspect blob with the verified bytes).
func (s *Store) putSmall(ctx context.Context, dgst v1.Hash, r io.Reader, size int64) (bool, error) {
	// One byte more than size, so that a longer body fails verification.
	data, err := io.ReadAll(newVerifier(io.LimitReader(r, size+1), dgst, size))
	if err != nil {
		return false, err
	}
	var info Info
	for attempt := 0; ; attempt++ {
		err = s.d.Put(ctx, BlobKey(dgst), bytes.NewReader(data), size)
		if !errors.Is(err, ErrExists) {
			return err == nil, err
		}
		info, err = s.d.Stat(ctx, BlobKey(dgst))
		if errors.Is(err, ErrNotFound) && attempt < 2 {
			// Removed between the two (gc collected an orphan): the
			// bytes are at hand, so write them again.
			continue
		}
		if err != nil {
			return false, err
		}
		break
	}
	if s.suspect(ctx, dgst, info.Size, size) {
		err := s.replace(ctx, dgst, bytes.NewReader(data), size)
		return err == nil, err
	}
	return false, sameSize(dgst, info.Size, size)
}

// putVerified is PutBlob after the existence check: it streams r through a
// verifier to the blob key of dgst.
func (s *Store) putVerified(ctx context.Context, dgst v1.Hash, r io.Reader, size int64) (created bool, err error) {
	err = s.d.Put(ctx, BlobKey(dgst), newVerifier(r, dgst, size), size)
	if errors.Is(err, ErrExists) {
		// Lost a race with another writer of the same digest. Its bytes were
		// verified by its own Store, so ours are not needed.
		return false, s.existing(ctx, dgst, size)
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// existing checks the blob dgst that is already stored against the size the
// caller knows it by (-1: unknown).
func (s *Store) existing(ctx context.Context, dgst v1.Hash, size int64) error {
	info, err := s.d.Stat(ctx, BlobKey(dgst))
	if errors.Is(err, ErrNotFound) {
		// Stored when the write found it, gone now: gc collected an
		// orphan in between. Not missing content: a retry writes it.
		return fmt.Errorf("blob: %s was removed while this upload found it stored (collected as an orphan); retry: %v", dgst, err)
	}
	if err != nil {
		return err
	}
	return sameSize(dgst, info.Size, size)
}

// sameSize rejects a caller whose claimed size disagrees with the stored blob
// of the same digest: their bytes cannot be the ones the digest names.
func sameSize(dgst v1.Hash, stored, claimed int64) error {
	if claimed >= 0 && claimed != stored {
		return fmt.Errorf("%w: %s is stored with %d bytes, not %d", ErrDigestMismatch, dgst, stored, claimed)
	}
	return nil
}

// OpenBlob opens the blob dgst and returns its size. The reader verifies the
// digest while it streams: at the end it returns an error wrapping
// ErrDigestMismatch instead of io.EOF when the stored bytes were corrupted,
// so a consumer that reads to EOF never silently accepts bad data.
func (s *Store) OpenBlob(ctx context.Context, dgst v1.Hash) (io.ReadCloser, int64, error) {
	if err := checkDigest(dgst); err != nil {
		return nil, 0, err
	}
	rc, size, err := s.openRaw(ctx, dgst)
	if err != nil {
		return nil, 0, err
	}
	return verifyingReadCloser{verifier: newVerifier(rc, dgst, size), c: rc}, size, nil
}

// openRaw opens the blob dgst unverified, in whichever form it is stored:
// blobs/sha256/<hex>, else its parts (parts.go).
func (s *Store) openRaw(ctx context.Context, dgst v1.Hash) (io.ReadCloser, int64, error) {
	rc, info, err := s.d.Get(ctx, BlobKey(dgst))
	if !errors.Is(err, ErrNotFound) {
		return rc, info.Size, err
	}
	doc, perr := s.readParts(ctx, dgst)
	if errors.Is(perr, ErrNotFound) {
		return nil, 0, err
	}
	if perr != nil {
		return nil, 0, perr
	}
	return s.openParts(ctx, doc), doc.Size, nil
}

// StatBlob returns the size of the blob dgst, or ErrNotFound.
func (s *Store) StatBlob(ctx context.Context, dgst v1.Hash) (int64, error) {
	if err := checkDigest(dgst); err != nil {
		return 0, err
	}
	info, err := s.d.Stat(ctx, BlobKey(dgst))
	if errors.Is(err, ErrNotFound) {
		doc, perr := s.readParts(ctx, dgst)
		if errors.Is(perr, ErrNotFound) {
			return 0, err
		}
		return doc.Size, perr
	}
	if err != nil {
		return 0, err
	}
	return info.Size, nil
}

// PutObject stores a small object (refs/, signatures/) under key exactly
// once; ErrExists when key is taken. These objects are pointers whose meaning
// must never change, hence no overwrite.
func (s *Store) PutObject(ctx context.Context, key string, data []byte) error {
	return s.d.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
}

// PutStaged streams r to key, a key under registry.UploadsPrefix, exactly
// once and unverified: the bytes of an OCI chunked upload, whose digest is
// known only when the upload ends (package oci). It returns how many bytes
// were stored. Memory stays bounded as in Put.
func (s *Store) PutStaged(ctx context.Context, key string, r io.Reader, size int64) (int64, error) {
	if !strings.HasPrefix(key, registry.UploadsPrefix) {
		return 0, fmt.Errorf("%w: %q is not an upload key", ErrInvalidKey, key)
	}
	cr := &countingReader{r: r}
	err := s.d.Put(ctx, key, cr, size)
	return cr.n, err
}

// OpenStagedParts reads keys written by PutStaged one after the other,
// unverified (the caller hashed them as they were written).
func (s *Store) OpenStagedParts(ctx context.Context, parts []Part) (io.ReadCloser, error) {
	for _, p := range parts {
		if !strings.HasPrefix(p.Key, registry.UploadsPrefix) {
			return nil, fmt.Errorf("%w: %q is not an upload key", ErrInvalidKey, p.Key)
		}
	}
	return s.openParts(ctx, partsDoc{Parts: parts}), nil
}

// DeleteStaged removes a key written by PutStaged (or an upload's state),
// when the driver can delete; otherwise gc's sweep of stale uploads will.
func (s *Store) DeleteStaged(ctx context.Context, key string) error {
	if !strings.HasPrefix(key, registry.UploadsPrefix) {
		return fmt.Errorf("%w: %q is not an upload key", ErrInvalidKey, key)
	}
	d, ok := s.d.(Deleter)
	if !ok {
		return nil
	}
	return d.Delete(ctx, key)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// GetObject reads a small object whole. Objects larger than maxSize are
// refused with ErrTooLarge rather than read, so a damaged or hostile bucket
// cannot make the service allocate without bound.
func (s *Store) GetObject(ctx context.Context, key string, maxSize int64) ([]byte, error) {
	rc, info, err := s.d.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if info.Size > maxSize {
		return nil, fmt.Errorf("%w: %q has %d bytes, limit %d", ErrTooLarge, key, info.Size, maxSize)
	}
	// Read one byte past the limit in case the object is longer than its
	// reported size.
	data, err := io.ReadAll(io.LimitReader(rc, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("blob: read %q: %w", key, err)
	}
	if int64(len(data)) > maxSize {
		return nil, fmt.Errorf("%w: %q is over the limit of %d bytes", ErrTooLarge, key, maxSize)
	}
	return data, nil
}

// CopyBlob copies the blob dgst from src (another environment's Store) into
// s, for promotion. copied is false when s already had it: keys derive from
// content, so the stored bytes are the same and nothing is rewritten.
// ErrNotFound when src lacks the blob.
//
// Whatever the path, the bytes that become visible in s hash to dgst: a
// source whose bytes do not match leaves nothing behind in s and the error
// wraps ErrDigestMismatch. A stored blob whose size differs from the
// source's is reported as ErrDigestMismatch too.
//
// When the destination driver can copy from the source's driver itself
// while verifying (VerifyingCopier: MinIO server-side copy with one
// credential), the bytes are copied by the backend and hashed by this
// process from a read of the same source version at the same time, and the
// copy is published only once the hash matched: the check costs no time
// beyond the copy's. Otherwise the blob is streamed once, with bounded
// memory, and hashed on the way. A driver that can only copy unverified
// (a plain Copier) is not used for blobs.
func (s *Store) CopyBlob(ctx context.Context, from registry.Blobs, dgst v1.Hash) (copied bool, err error) {
	return s.CopyBlobWhen(ctx, from, dgst, nil)
}

// CopyBlobWhen is CopyBlob for a copy that must not become visible before
// the caller has decided that it may: ready is called once before anything
// is published in s, and an error from it aborts the copy (nothing becomes
// visible) and is returned. A promotion starts its copies this way while
// its gates run and answers ready with their verdict.
//
// On the server-side path the backend copies and this process verifies
// before ready is called, with verified true: the bytes that will be
// published are proven to hash to dgst, so the caller need not read the
// source again to know it. On the streaming path ready is called first,
// with verified false, and the blob is streamed (and hashed) after it, so
// a held copy holds no buffers. ready is not called when s already has the
// blob. A nil ready is CopyBlob.
func (s *Store) CopyBlobWhen(ctx context.Context, from registry.Blobs, dgst v1.Hash, ready func(ctx context.Context, verified bool) error) (copied bool, err error) {
	if err := checkDigest(dgst); err != nil {
		return false, err
	}
	if ready == nil {
		ready = func(context.Context, bool) error { return nil }
	}
	src, ok := from.(*Store)
	if !ok {
		return s.copyVerified(ctx, from, dgst, ready)
	}
	key := BlobKey(dgst)
	srcInfo, err := src.d.Stat(ctx, key)
	if errors.Is(err, ErrNotFound) {
		if doc, perr := src.readParts(ctx, dgst); perr == nil {
			return s.copyParts(ctx, src, dgst, doc, ready)
		} else if !errors.Is(perr, ErrNotFound) {
			return false, perr
		}
	}
	if err != nil {
		return false, err
	}
	if stored, err := s.hasBlob(ctx, dgst, srcInfo.Size); stored || err != nil {
		return false, err
	}

	if cp, ok := s.d.(VerifyingCopier); ok {
		done, err := cp.CopyVerifiedFrom(ctx, src.d, key, verifyThenReady(ctx, dgst, srcInfo.Size, ready))
		if copied, finished, err := s.backendCopied(ctx, dgst, srcInfo.Size, done, err); finished {
			return copied, err
		}
	}

	// Streaming. The source is read raw and hashed once, by the verifier
	// in front of Put: it proves that the bytes written are dgst's, which is
	// all that OpenBlob's verifier would add at twice the CPU.
	if err := ready(ctx, false); err != nil {
		return false, err
	}
	rc, info, err := src.d.Get(ctx, key)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	return s.putVerified(ctx, dgst, rc, info.Size)
}

// verifyThenReady is the verify of a backend copy of the blob dgst of size
// bytes: the bytes copied must hash to dgst, and then ready decides.
func verifyThenReady(ctx context.Context, dgst v1.Hash, size int64, ready func(context.Context, bool) error) func(io.Reader, int64) error {
	return func(r io.Reader, n int64) error {
		if n != size {
			// Replaced since it was looked up; its bytes were verified by
			// the Store that wrote them, but not against this size.
			return fmt.Errorf("%w: %s: source has %d bytes, not %d", ErrDigestMismatch, dgst, n, size)
		}
		if err := drain(newVerifier(r, dgst, n)); err != nil {
			return err
		}
		return ready(ctx, true)
	}
}

// copyParts copies the blob dgst, kept in src in the parts doc names, to
// a content-addressed key of s: joined by the backend while this process
// verifies (PartsCopier) when the pair can, else streamed. Whether s has
// the blob already is asked once, for either path.
func (s *Store) copyParts(ctx context.Context, src *Store, dgst v1.Hash, doc partsDoc, ready func(context.Context, bool) error) (bool, error) {
	if stored, err := s.hasBlob(ctx, dgst, doc.Size); stored || err != nil {
		return false, err
	}
	if cp, ok := s.d.(PartsCopier); ok {
		done, err := cp.CopyPartsVerifiedFrom(ctx, src.d, doc.Parts, BlobKey(dgst), verifyThenReady(ctx, dgst, doc.Size, ready))
		if copied, finished, err := s.backendCopied(ctx, dgst, doc.Size, done, err); finished {
			return copied, err
		}
	}
	return s.streamIn(ctx, dgst, doc.Size, ready, func() (io.ReadCloser, error) { return src.openParts(ctx, doc), nil })
}

// backendCopied reads the outcome of a backend's copy of the blob dgst
// of size bytes: finished is false when the backend could not copy (the
// caller streams instead).
func (s *Store) backendCopied(ctx context.Context, dgst v1.Hash, size int64, done bool, err error) (copied, finished bool, _ error) {
	switch {
	case errors.Is(err, ErrExists):
		// Another promotion of the same blob won the race.
		return false, true, s.existing(ctx, dgst, size)
	case err != nil:
		return false, true, fmt.Errorf("blob: copy %s: %w", dgst, err)
	}
	return done, done, nil
}

// drain reads v to its end, returning nil when the verifier's verdict is
// that the bytes are the digest's. The buffer is large because the reader is
// usually a network stream of gigabytes.
func drain(v *verifier) error {
	buf := make([]byte, 256<<10)
	for {
		_, err := v.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// copyVerified streams a blob from a store of another implementation through
// its verifying reader.
func (s *Store) copyVerified(ctx context.Context, from registry.Blobs, dgst v1.Hash, ready func(context.Context, bool) error) (bool, error) {
	size, err := from.StatBlob(ctx, dgst)
	if err != nil {
		return false, err
	}
	return s.copyStreamed(ctx, dgst, size, ready, func() (io.ReadCloser, error) {
		rc, _, err := from.OpenBlob(ctx, dgst)
		return rc, err
	})
}

// copyStreamed writes the blob dgst of size bytes from what open returns,
// verified on the way, unless s has it already; ready is called first.
func (s *Store) copyStreamed(ctx context.Context, dgst v1.Hash, size int64, ready func(context.Context, bool) error, open func() (io.ReadCloser, error)) (bool, error) {
	if stored, err := s.hasBlob(ctx, dgst, size); stored || err != nil {
		return false, err
	}
	return s.streamIn(ctx, dgst, size, ready, open)
}

// hasBlob reports whether s stores the blob dgst under its
// content-addressed key; one of another size than size is ErrDigestMismatch.
func (s *Store) hasBlob(ctx context.Context, dgst v1.Hash, size int64) (bool, error) {
	info, err := s.d.Stat(ctx, BlobKey(dgst))
	switch {
	case err == nil:
		return true, sameSize(dgst, info.Size, size)
	case errors.Is(err, ErrNotFound):
		return false, nil
	}
	return false, err
}

// streamIn calls ready, then writes the blob dgst of size bytes from what
// open returns, verified on the way.
func (s *Store) streamIn(ctx context.Context, dgst v1.Hash, size int64, ready func(context.Context, bool) error, open func() (io.ReadCloser, error)) (bool, error) {
	if err := ready(ctx, false); err != nil {
		return false, err
	}
	rc, err := open()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	return s.putVerified(ctx, dgst, rc, size)
}

// CopyObject copies a small non-blob object (refs/, signatures/) from src to
// the same key in s, server-side when the drivers allow it, else streamed.
// Like PutObject it is create-once: ErrExists when s already has key, since
// a pointer's meaning must never change; ErrNotFound when src lacks it.
func (s *Store) CopyObject(ctx context.Context, src *Store, key string) error {
	if cp, ok := s.d.(Copier); ok {
		done, err := cp.CopyFrom(ctx, src.d, key)
		if err != nil || done {
			return err
		}
	}
	rc, info, err := src.d.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	return s.d.Put(ctx, key, rc, info.Size)
}

// verifier passes bytes through while hashing them and turns the final
// io.EOF into an ErrDigestMismatch error when the content is wrong. It fails
// early once more than size bytes arrive, so an oversized upload is cut off
// without waiting for the end.
type verifier struct {
	r    io.Reader
	h    hash.Hash
	want v1.Hash
	size int64 // -1 when unknown
	n    int64
	err  error // sticky verdict once reached
}

func newVerifier(r io.Reader, want v1.Hash, size int64) *verifier {
	return &verifier{r: r, h: sha256.New(), want: want, size: size}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = fmt.Errorf("%w: %s: more than %d bytes", ErrDigestMismatch, v.want, v.size)
		return n, v.err
	}
	if err == io.EOF {
		v.err = v.verdict()
		return n, v.err
	}
	return n, err
}

func (v *verifier) verdict() error {
	if v.size >= 0 && v.n != v.size {
		return fmt.Errorf("%w: %s: got %d bytes, want %d", ErrDigestMismatch, v.want, v.n, v.size)
	}
	if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Hex {
		return fmt.Errorf("%w: want %s, got sha256:%s", ErrDigestMismatch, v.want, got)
	}
	return io.EOF
}

type verifyingReadCloser struct {
	*verifier
	c io.Closer
}

func (v verifyingReadCloser) Close() error { return v.c.Close() }
