package blob

import (
	"context"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Key limits. S3 caps keys at 1024 bytes and common filesystems cap a path
// segment at 255 bytes; enforcing both everywhere keeps the drivers
// interchangeable (a key that works on the embedded default works on MinIO).
const (
	MaxKeyLength     = 1024
	MaxSegmentLength = 255
)

// CheckKey reports, as an error wrapping ErrInvalidKey, why key cannot be
// stored. A key is a relative slash-separated path of non-empty segments.
// Refused: absolute keys, "." and ".." segments (path traversal on the
// filesystem driver, surprising normalisation on S3), segments starting with
// '.' (reserved for driver bookkeeping such as the filesystem driver's
// .tmp/), backslashes (a separator on Windows), control characters and
// invalid UTF-8 (MinIO rejects them; they also make logs ambiguous).
func CheckKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLength:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLength))
	case key[0] == '/':
		return bad("absolute")
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	}
	for _, r := range key {
		switch {
		case r == '\\':
			return bad("contains a backslash")
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return bad("contains a control character")
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return bad("empty path segment")
		case seg[0] == '.':
			return bad(`segment is "." or ".." or starts with "."`)
		case len(seg) > MaxSegmentLength:
			return bad(fmt.Sprintf("segment longer than %d bytes", MaxSegmentLength))
		}
	}
	return nil
}

// Checked wraps d so that every key is validated with CheckKey before d sees
// it, once for all drivers (the idea of distribution's base.Base). Drivers
// can then map keys to paths or object names without re-deriving the rules.
// Wrapping an already checked driver returns it unchanged.
func Checked(d Driver) Driver {
	if c, ok := d.(checked); ok {
		return c
	}
	return checked{d: d}
}

type checked struct{ d Driver }

func (c checked) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("blob: put %q: invalid size %d", key, size)
	}
	return c.d.Put(ctx, key, r, size)
}

func (c checked) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := CheckKey(key); err != nil {
		return nil, Info{}, err
	}
	return c.d.Get(ctx, key)
}

func (c checked) Stat(ctx context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	return c.d.Stat(ctx, key)
}

func (c checked) Ping(ctx context.Context) error { return c.d.Ping(ctx) }

// CopyFrom forwards the Copier capability of the wrapped driver, so wrapping
// never hides it. src is unwrapped too: drivers recognise a source of their
// own type by assertion, which a Checked wrapper around it would defeat. A
// wrapped driver without the capability reports ok=false (stream instead).
func (c checked) CopyFrom(ctx context.Context, src Driver, key string) (bool, error) {
	if err := CheckKey(key); err != nil {
		return false, err
	}
	cp, ok := c.d.(Copier)
	if !ok {
		return false, nil
	}
	return cp.CopyFrom(ctx, unwrap(src), key)
}

// CopyVerifiedFrom forwards the VerifyingCopier capability like CopyFrom.
func (c checked) CopyVerifiedFrom(ctx context.Context, src Driver, key string, verify func(io.Reader, int64) error) (bool, error) {
	if err := CheckKey(key); err != nil {
		return false, err
	}
	cp, ok := c.d.(VerifyingCopier)
	if !ok {
		return false, nil
	}
	return cp.CopyVerifiedFrom(ctx, unwrap(src), key, verify)
}

// CopyPartsVerifiedFrom forwards the PartsCopier capability like CopyFrom.
func (c checked) CopyPartsVerifiedFrom(ctx context.Context, src Driver, parts []Part, dst string, verify func(io.Reader, int64) error) (bool, error) {
	if err := CheckKey(dst); err != nil {
		return false, err
	}
	for _, p := range parts {
		if err := CheckKey(p.Key); err != nil {
			return false, err
		}
	}
	cp, ok := c.d.(PartsCopier)
	if !ok {
		return false, nil
	}
	return cp.CopyPartsVerifiedFrom(ctx, unwrap(src), parts, dst, verify)
}

// unwrap returns the driver inside a Checked wrapper, or d itself.
func unwrap(d Driver) Driver {
	if c, ok := d.(checked); ok {
		return c.d
	}
	return d
}
