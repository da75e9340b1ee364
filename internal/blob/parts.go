package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// Blobs kept in parts. A chunked OCI upload learns its digest only at its
// last request, after every byte was stored under the upload's keys;
// writing those bytes again to blobs/sha256/<hex> would cost a second pass
// over them (MinIO rewrites data on a server-side copy too). So the chunks
// stay where they are and parts/sha256/<hex> (registry.PartsKey) lists
// them: the blob's key is then not derived from its content, and this
// create-once object maps the digest to it, the other branch of DESIGN
// §2's stream-once rule. Every read goes through OpenBlob, StatBlob or a
// copy, which look for blobs/sha256/<hex> first and then for the parts,
// and verify the digest while streaming either form.

// Part is one stored piece of a blob kept in parts: an object under
// registry.UploadsPrefix and its length.
type Part = registry.BlobPart

// partsMediaType marks a parts object, so that a reader never mistakes
// another document for one.
const partsMediaType = "application/vnd.stagegate.blob-parts.v1+json"

// MaxParts bounds the parts of one blob (package oci bounds an upload's
// chunks below it).
const MaxParts = 10000

// maxPartsObject bounds a parts object read back: MaxParts entries of
// about 100 bytes, with room.
const maxPartsObject = 2 << 20

type partsDoc struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Parts     []Part `json:"parts"`
}

// check refuses a parts list that cannot hold the blob dgst of size
// bytes: keys outside the uploads, empty parts, lengths that do not add up.
func checkParts(dgst v1.Hash, size int64, parts []Part) error {
	if len(parts) == 0 || len(parts) > MaxParts {
		return fmt.Errorf("%w: %s: %d parts, want 1 to %d", ErrInvalidKey, dgst, len(parts), MaxParts)
	}
	var sum int64
	for _, p := range parts {
		if !strings.HasPrefix(p.Key, registry.UploadsPrefix) {
			return fmt.Errorf("%w: part %q of %s is not an upload key", ErrInvalidKey, p.Key, dgst)
		}
		if err := CheckKey(p.Key); err != nil {
			return err
		}
		if p.Size <= 0 {
			return fmt.Errorf("%w: part %q of %s has %d bytes", ErrInvalidKey, p.Key, dgst, p.Size)
		}
		sum += p.Size
	}
	if sum != size {
		return fmt.Errorf("%w: the parts of %s add up to %d bytes, not %d", ErrDigestMismatch, dgst, sum, size)
	}
	return nil
}

// LinkBlob makes the stored objects parts, read in order, the blob dgst of
// size bytes, without reading or copying them. The caller vouches that
// they hash to dgst (package oci hashed them as they arrived); every read
// verifies again. created is false when dgst was stored already, in
// either form: then nothing is written and parts are left to gc. A stored
// blob of another size is ErrDigestMismatch.
func (s *Store) LinkBlob(ctx context.Context, dgst v1.Hash, size int64, parts []Part) (created bool, err error) {
	if err := checkDigest(dgst); err != nil {
		return false, err
	}
	if err := checkParts(dgst, size, parts); err != nil {
		return false, err
	}
	if stored, err := s.hasBlob(ctx, dgst, size); stored || err != nil {
		return false, err
	}
	data, err := json.Marshal(partsDoc{MediaType: partsMediaType, Digest: dgst.String(), Size: size, Parts: parts})
	if err != nil {
		return false, err
	}
	err = s.d.Put(ctx, registry.PartsKey(dgst), bytes.NewReader(data), int64(len(data)))
	if errors.Is(err, ErrExists) {
		// Another upload of the same bytes linked first.
		doc, err := s.readParts(ctx, dgst)
		if err != nil {
			return false, err
		}
		return false, sameSize(dgst, doc.Size, size)
	}
	return err == nil, err
}

// readParts reads and checks the parts object of dgst. ErrNotFound when
// there is none; a damaged one is ErrDigestMismatch (stored content that
// is not what it should be).
func (s *Store) readParts(ctx context.Context, dgst v1.Hash) (partsDoc, error) {
	data, err := s.GetObject(ctx, registry.PartsKey(dgst), maxPartsObject)
	if err != nil {
		return partsDoc{}, err
	}
	var doc partsDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return partsDoc{}, fmt.Errorf("%w: parts of %s unreadable: %v", ErrDigestMismatch, dgst, err)
	}
	if doc.MediaType != partsMediaType || doc.Digest != dgst.String() {
		return partsDoc{}, fmt.Errorf("%w: parts object of %s names %q (%s)", ErrDigestMismatch, dgst, doc.Digest, doc.MediaType)
	}
	if err := checkParts(dgst, doc.Size, doc.Parts); err != nil {
		return partsDoc{}, fmt.Errorf("%w: parts object of %s: %v", ErrDigestMismatch, dgst, err)
	}
	return doc, nil
}

// PartsOf returns the parts of the blob dgst when it is kept in parts
// (gc keeps them), ErrNotFound when it is not.
func (s *Store) PartsOf(ctx context.Context, dgst v1.Hash) ([]Part, error) {
	if err := checkDigest(dgst); err != nil {
		return nil, err
	}
	doc, err := s.readParts(ctx, dgst)
	return doc.Parts, err
}

// openParts reads the parts of doc one after the other, unverified.
func (s *Store) openParts(ctx context.Context, doc partsDoc) io.ReadCloser {
	opens := make([]func() (io.ReadCloser, error), len(doc.Parts))
	for i, p := range doc.Parts {
		opens[i] = func() (io.ReadCloser, error) {
			rc, _, err := s.d.Get(ctx, p.Key)
			if err != nil {
				return nil, fmt.Errorf("blob: opening part %s: %w", p.Key, err)
			}
			return rc, nil
		}
	}
	return Joined(opens)
}

// Joined reads what each of opens returns, one after the other, opening
// each only when the one before it has ended (so a long list holds one
// stream at a time).
func Joined(opens []func() (io.ReadCloser, error)) io.ReadCloser {
	return &joined{opens: opens}
}

type joined struct {
	opens []func() (io.ReadCloser, error)
	cur   io.ReadCloser
}

func (j *joined) Read(b []byte) (int, error) {
	for {
		if j.cur == nil {
			if len(j.opens) == 0 {
				return 0, io.EOF
			}
			rc, err := j.opens[0]()
			if err != nil {
				return 0, err
			}
			j.cur, j.opens = rc, j.opens[1:]
		}
		n, err := j.cur.Read(b)
		if err == io.EOF {
			j.cur.Close()
			j.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (j *joined) Close() error {
	if j.cur != nil {
		return j.cur.Close()
	}
	return nil
}

// VerifyParts re-hashes the blob dgst kept in parts and returns its size:
// scrub's check of the parts form, whatever blobs/sha256/<hex> holds.
func (s *Store) VerifyParts(ctx context.Context, dgst v1.Hash) (int64, error) {
	if err := checkDigest(dgst); err != nil {
		return 0, err
	}
	doc, err := s.readParts(ctx, dgst)
	if err != nil {
		return 0, err
	}
	return s.verifyParts(ctx, dgst, doc)
}

// verifyParts is VerifyParts for the parts object doc already read.
func (s *Store) verifyParts(ctx context.Context, dgst v1.Hash, doc partsDoc) (int64, error) {
	rc := s.openParts(ctx, doc)
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, ContextReader{Ctx: ctx, R: rc})
	switch {
	case errors.Is(err, ErrNotFound):
		return doc.Size, fmt.Errorf("%w: %s: %v", ErrDigestMismatch, dgst, err)
	case err != nil:
		return doc.Size, fmt.Errorf("blob: verify %s: %w", dgst, err)
	case n != doc.Size:
		return doc.Size, fmt.Errorf("%w: %s: read %d bytes from its parts, want %d", ErrDigestMismatch, dgst, n, doc.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != dgst.Hex {
		return doc.Size, fmt.Errorf("%w: the parts of %s hash to sha256:%s", ErrDigestMismatch, dgst, got)
	}
	return doc.Size, nil
}
