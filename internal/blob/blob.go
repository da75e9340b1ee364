// Package blob stores the immutable objects of one environment's bucket.
//
// The bucket layout is drawn, and every key built, in registry/layout.go.
// A Driver is the raw, key-based contract every backend implements; Store
// layers content addressing and digest verification over any Driver and
// implements registry.Blobs.
package blob

import (
	"context"
	"io"
	"time"

	"github.com/stagegate/stagegate/registry"
)

// Errors every Driver and Store returns (possibly wrapped). They are the
// domain's storage sentinels (registry.ErrObject…), named here for drivers.
var (
	ErrNotFound       = registry.ErrObjectNotFound
	ErrExists         = registry.ErrObjectExists
	ErrDigestMismatch = registry.ErrDigestMismatch
	ErrInvalidKey     = registry.ErrInvalidKey
	ErrTooLarge       = registry.ErrObjectTooLarge
)

// Info describes a stored object.
type Info struct {
	Key  string
	Size int64
	// ModTime is when the object was written; set by Lister (gc's grace
	// period reads it), zero where a driver does not report it.
	ModTime time.Time
}

// Driver is one bucket of one environment.
type Driver interface {
	// Put stores r under key exactly once. size is the exact length, or -1
	// when unknown; a reader that yields a different length is an error. It
	// returns ErrExists when key already exists (and leaves it untouched),
	// also when several writers race, across processes and replicas. Put
	// reads r until it returns io.EOF before anything becomes visible, so a
	// wrapping reader can veto the object at the end (Store verifies digests
	// that way). When r returns an error other than io.EOF, Put returns that
	// error (wrapped) and nothing becomes visible under key. Memory use is
	// bounded whatever the size.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens key for reading. ErrNotFound when absent.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat describes key. ErrNotFound when absent.
	Stat(ctx context.Context, key string) (Info, error)
	// Ping reports whether the backend is reachable (for readiness probes).
	Ping(ctx context.Context) error
}

// Copier is an optional Driver capability, found by type assertion: copying
// an object from another driver without streaming it through this process.
// Promotion uses it so that a multi-gigabyte blob moving from staging to prod
// costs the service neither bandwidth nor CPU when the backend can do the
// work itself (MinIO server-side copy, a hard link on one filesystem).
//
// Store.CopyBlob calls it with the source's raw driver (Checked wrappers
// removed), so an implementation only needs to recognise its own type.
type Copier interface {
	// CopyFrom copies key from src to the same key in this driver, with the
	// same create-once guarantee as Put: ErrExists when key is already taken
	// here (the existing object is left untouched), also when copies race.
	// ok=false with a nil error means this pair of drivers cannot copy
	// without the caller's help (another driver type, another endpoint or
	// credential, another filesystem); nothing was written and the caller
	// streams instead. ErrNotFound when src has no object under key.
	CopyFrom(ctx context.Context, src Driver, key string) (ok bool, err error)
}

// VerifyingCopier is a Copier that checks the bytes while it copies, so a
// verified copy costs about as long as the copy alone instead of a re-read
// followed by the copy.
type VerifyingCopier interface {
	Copier
	// CopyVerifiedFrom is CopyFrom, except that the copy becomes visible
	// only after verify returned nil. verify is called once, concurrently
	// with the copy, with the bytes of the same version of the source
	// object that is being copied (size of them, as src reported on stat);
	// when it fails, or the source changes during the copy, nothing
	// becomes visible and its error is returned.
	CopyVerifiedFrom(ctx context.Context, src Driver, key string, verify func(r io.Reader, size int64) error) (ok bool, err error)
}

// PartsCopier is a VerifyingCopier that can also join the pieces of a blob
// kept in parts (parts.go) into one object, so that promoting such a blob
// costs a backend copy, as a blob under blobs/ does, and not a stream
// through this process.
type PartsCopier interface {
	VerifyingCopier
	// CopyPartsVerifiedFrom writes dst here from src's objects parts,
	// joined in order, like CopyVerifiedFrom: create-once, and visible
	// only after verify returned nil on their joined bytes. ok=false with
	// a nil error when this pair cannot (as for CopyFrom, or pieces the
	// backend cannot join); nothing was written, and the caller streams.
	CopyPartsVerifiedFrom(ctx context.Context, src Driver, parts []Part, dst string, verify func(r io.Reader, size int64) error) (ok bool, err error)
}
