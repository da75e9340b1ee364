package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrLocked is returned by Deleter.Delete and Uploads.AbortUpload when the
// backend's retention (MinIO object lock) forbids removing the object yet.
// gc skips such objects and reports them.
var ErrLocked = errors.New("storage: object is under retention")

// Lister is an optional Driver capability, found by type assertion: listing
// the objects of the bucket. Storage hygiene (gc, scrub, reindex) needs it;
// serving requests never does.
type Lister interface {
	// List calls fn for every object whose key starts with prefix, in no
	// particular order, with Key, Size and ModTime set. Driver bookkeeping
	// (the filesystem driver's .tmp/, incomplete multipart uploads) is not
	// listed. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error
}

// Deleter is an optional Driver capability: removing an object. Only gc
// and repair use it; the service's own paths never delete.
type Deleter interface {
	// Delete removes key. Deleting an absent key is not an error (a
	// concurrent gc may have won). ErrLocked when retention forbids it.
	Delete(ctx context.Context, key string) error
}

// Replacer is an optional Driver capability: an unconditional, atomic
// write. Like Put it reads r to io.EOF before anything becomes visible, so a
// verifying reader can veto the write; unlike Put it replaces an existing
// object. Readers see the old object or the new one, never a mix (a rename
// on the filesystem, a single PUT or multipart completion on MinIO). Only
// repair uses it: a blob whose stored bytes fail verification is replaced
// by bytes that were verified on the way in.
type Replacer interface {
	Replace(ctx context.Context, key string, r io.Reader, size int64) error
}

// Upload is a write that never completed: a filesystem temp file left by
// a crash, or an incomplete MinIO multipart upload. Key is the object it
// was for, when the backend knows it.
type Upload struct {
	ID      string
	Key     string
	Size    int64
	Started time.Time
}

// Uploads is an optional Driver capability: listing and discarding writes
// that never completed. They are invisible to readers but hold space.
type Uploads interface {
	// ListUploads calls fn for every incomplete upload. An upload in
	// flight right now is listed too: callers decide by Started.
	ListUploads(ctx context.Context, fn func(Upload) error) error
	// AbortUpload discards u; an upload already gone is not an error.
	AbortUpload(ctx context.Context, u Upload) error
}

// Capabilities are forwarded by the Checked and Observed wrappers, so that
// wrapping a driver never hides them; a wrapped driver without one answers
// with errNoCapability.

func noCapability(what string) error {
	return fmt.Errorf("blob: the storage driver cannot %s", what)
}

func (c checked) List(ctx context.Context, prefix string, fn func(Info) error) error {
	l, ok := c.d.(Lister)
	if !ok {
		return noCapability("list objects")
	}
	return l.List(ctx, prefix, fn)
}

func (c checked) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	d, ok := c.d.(Deleter)
	if !ok {
		return noCapability("delete objects")
	}
	return d.Delete(ctx, key)
}

func (c checked) Replace(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("blob: replace %q: invalid size %d", key, size)
	}
	rp, ok := c.d.(Replacer)
	if !ok {
		return noCapability("replace objects")
	}
	return rp.Replace(ctx, key, r, size)
}

func (c checked) ListUploads(ctx context.Context, fn func(Upload) error) error {
	u, ok := c.d.(Uploads)
	if !ok {
		return noCapability("list incomplete uploads")
	}
	return u.ListUploads(ctx, fn)
}

func (c checked) AbortUpload(ctx context.Context, up Upload) error {
	u, ok := c.d.(Uploads)
	if !ok {
		return noCapability("abort incomplete uploads")
	}
	return u.AbortUpload(ctx, up)
}

// Blob operation names of the hygiene capabilities.
const (
	OpList    = "list"
	OpDelete  = "delete"
	OpReplace = "replace"
)

func (o observed) List(ctx context.Context, prefix string, fn func(Info) error) error {
	l, ok := o.d.(Lister)
	if !ok {
		return noCapability("list objects")
	}
	start := time.Now()
	err := l.List(ctx, prefix, fn)
	o.observe(OpList, time.Since(start), err)
	return err
}

func (o observed) Delete(ctx context.Context, key string) error {
	d, ok := o.d.(Deleter)
	if !ok {
		return noCapability("delete objects")
	}
	start := time.Now()
	err := d.Delete(ctx, key)
	o.observe(OpDelete, time.Since(start), err)
	return err
}

func (o observed) Replace(ctx context.Context, key string, r io.Reader, size int64) error {
	rp, ok := o.d.(Replacer)
	if !ok {
		return noCapability("replace objects")
	}
	start := time.Now()
	err := rp.Replace(ctx, key, r, size)
	o.observe(OpReplace, time.Since(start), err)
	return err
}

func (o observed) ListUploads(ctx context.Context, fn func(Upload) error) error {
	u, ok := o.d.(Uploads)
	if !ok {
		return noCapability("list incomplete uploads")
	}
	return u.ListUploads(ctx, fn)
}

func (o observed) AbortUpload(ctx context.Context, up Upload) error {
	u, ok := o.d.(Uploads)
	if !ok {
		return noCapability("abort incomplete uploads")
	}
	return u.AbortUpload(ctx, up)
}

// Has reports whether d, seen through any wrappers, has capability C.
func Has[C any](d Driver) bool {
	_, ok := bare(d).(C)
	return ok
}
