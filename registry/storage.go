package registry

import (
	"context"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Storage failures. Every blob store returns these (possibly wrapped), so
// the domain can use errors.Is without knowing which backend is configured;
// StorageError is the one place that turns them into API errors.
var (
	// ErrObjectNotFound: the key (or the bucket behind it) holds no object.
	ErrObjectNotFound = errors.New("storage: not found")
	// ErrObjectExists: a create-once write found the key already taken; the
	// stored object was left untouched.
	ErrObjectExists = errors.New("storage: already exists")
	// ErrDigestMismatch: bytes did not hash to (or were not as long as) what
	// the caller promised, on upload or when read back (corruption).
	ErrDigestMismatch = errors.New("storage: content does not match digest")
	// ErrInvalidKey: a key that could escape the bucket layout or that some
	// backend cannot store identically.
	ErrInvalidKey = errors.New("storage: invalid key")
	// ErrObjectTooLarge: an object is over the limit the caller is willing
	// to read into memory.
	ErrObjectTooLarge = errors.New("storage: object too large")
)

// Blobs is one environment's bucket as the domain uses it: content-addressed
// blobs verified on write and on read, plus small create-once objects (refs,
// signatures, attestations) under the keys of layout.go. Package
// internal/blob implements it over any storage driver.
type Blobs interface {
	// PutBlob streams r to the blob dgst, verifying the digest and size
	// (-1: unknown) as it writes; created is false when it was stored
	// already.
	PutBlob(ctx context.Context, dgst v1.Hash, r io.Reader, size int64) (created bool, err error)
	// OpenBlob streams the blob dgst; the reader fails with
	// ErrDigestMismatch at the end instead of io.EOF when the stored bytes
	// are corrupt.
	OpenBlob(ctx context.Context, dgst v1.Hash) (io.ReadCloser, int64, error)
	StatBlob(ctx context.Context, dgst v1.Hash) (int64, error)
	// PutObject stores a small object exactly once (ErrObjectExists).
	PutObject(ctx context.Context, key string, data []byte) error
	// GetObject reads a small object whole, refusing one over maxSize.
	GetObject(ctx context.Context, key string, maxSize int64) ([]byte, error)
	// CopyBlob copies the blob dgst from another environment's bucket into
	// this one (promotion), verified, create-once.
	CopyBlob(ctx context.Context, from Blobs, dgst v1.Hash) (copied bool, err error)
}

// BlobPart is one stored piece of a blob kept in parts (registry.PartsKey):
// an object under UploadsPrefix and its length.
type BlobPart struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
}

// StorageError classifies a blob store failure for the API. what names the
// operation for the log. Corrupt or missing content that the service itself
// stored is our fault (Internal); everything else is the dependency being
// unreachable (Unavailable), so a retry may help.
func StorageError(what string, err error) error {
	var de *Error
	switch {
	case errors.As(err, &de):
		return err
	case errors.Is(err, ErrObjectNotFound):
		return CodeInternal.Errorf("%s: content missing from storage", what).WithCause(err)
	case errors.Is(err, ErrDigestMismatch):
		return CodeInternal.Errorf("%s: stored content does not match its digest", what).WithCause(err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CodeUnavailable.Errorf("%s: request cancelled or timed out", what).WithCause(err)
	}
	return CodeUnavailable.Errorf("%s: storage is unavailable", what).WithCause(err)
}
