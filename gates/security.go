package gates

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/registry"
)

// signature requires the version to be signed by a trusted CI key. The
// service verifies the signature (it holds the keys) and records the
// outcome in Subject.Signature; this check judges it.
type signature struct{ required bool }

type signatureParams struct {
	// Required makes the check error when no trusted keys are configured,
	// instead of skipping. Use it where signing is mandatory.
	Required bool `yaml:"required"`
}

func newSignatureCheck(n *yaml.Node) (Check, error) {
	var p signatureParams
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	return signature{required: p.Required}, nil
}

func (signature) Name() string { return "signature" }

// SignatureDetails carries the verification outcome.
type SignatureDetails struct {
	Status SignatureStatus `json:"status"`
	KeyID  string          `json:"keyId,omitempty"`
	Detail string          `json:"detail,omitempty"`
}

func (c signature) Run(_ context.Context, s *Subject) Result {
	d := SignatureDetails{Status: s.Signature.Status, KeyID: s.Signature.KeyID, Detail: truncate(s.Signature.Detail, 300)}
	switch s.Signature.Status {
	case SignatureUnconfigured:
		if c.required {
			return errored(d, "a trusted CI signature is required but no trusted keys are configured")
		}
		return skip("no trusted CI keys are configured")
	case SignatureTrusted:
		return pass(d, "signed by trusted CI key %s", d.KeyID)
	case SignatureUntrusted:
		return fail(d, "signature is not from a trusted CI key: %s", d.Detail)
	case SignatureAbsent:
		return fail(d, "no CI signature found")
	case SignatureError:
		return errored(d, "signature verification could not run: %s", d.Detail)
	default:
		return errored(d, "unknown signature status %q", s.Signature.Status)
	}
}

// digestIntegrity re-reads every file and evidence document through its
// opener and compares the sha256 digest and size with the recorded ones,
// so a promotion never ships bytes other than those that were tested. A
// file whose copy into the target already hashed it (File.Verified) is not
// read again: that copy proved the very bytes that will land in the target,
// which says more than a second read of the source would.
type digestIntegrity struct{}

func newDigestIntegrityCheck(n *yaml.Node) (Check, error) {
	var p noParams
	return digestIntegrity{}, decodeStrict(n, &p)
}

func (digestIntegrity) Name() string { return "digest-integrity" }

// IntegrityMismatch is one blob whose stored bytes differ from the record.
type IntegrityMismatch struct {
	Path       string `json:"path"`
	WantDigest string `json:"wantDigest"`
	GotDigest  string `json:"gotDigest"`
	WantSize   int64  `json:"wantSize"`
	GotSize    int64  `json:"gotSize"`
}

// IntegrityDetails lists every mismatch.
type IntegrityDetails struct {
	Verified int   `json:"verified"`
	Bytes    int64 `json:"bytes"`
	// ByCopy counts the verified blobs that were hashed by their verifying
	// copy into the target rather than by a read of this check.
	ByCopy     int                 `json:"byCopy,omitempty"`
	Mismatches []IntegrityMismatch `json:"mismatches,omitempty"`
}

func (digestIntegrity) Run(ctx context.Context, s *Subject) Result {
	type blob struct {
		path string
		f    File
	}
	var blobs []blob
	for _, f := range s.Files {
		blobs = append(blobs, blob{f.Path, f})
	}
	for i, e := range s.Evidence {
		blobs = append(blobs, blob{fmt.Sprintf("evidence[%d] (%s)", i, e.Type), File{Digest: e.Digest, Size: e.Size, Open: e.Open}})
	}
	var d IntegrityDetails
	for _, b := range blobs {
		if b.f.Digest.Algorithm != "sha256" {
			return errored(d, "%s: recorded digest %q is not sha256", b.path, b.f.Digest.String())
		}
		if b.f.Verified != nil && b.f.Verified(ctx) {
			d.Verified++
			d.ByCopy++
			d.Bytes += b.f.Size
			continue
		}
		got, n, err := hashBlob(ctx, b.f.Open)
		if err != nil && !errors.Is(err, registry.ErrDigestMismatch) {
			return errored(d, "%s: %v", b.path, err)
		}
		// A verifying reader (the blob store's) reports corrupt bytes at
		// their end, after every byte went through the hash: that is a
		// mismatch to report, not a check that could not decide.
		d.Verified++
		d.Bytes += n
		if got != b.f.Digest.Hex || n != b.f.Size {
			d.Mismatches = append(d.Mismatches, IntegrityMismatch{Path: b.path,
				WantDigest: b.f.Digest.String(), GotDigest: "sha256:" + got, WantSize: b.f.Size, GotSize: n})
		}
	}
	if len(d.Mismatches) > 0 {
		m := d.Mismatches[0]
		return fail(d, "%d blob(s) differ from their recorded digest, first %s", len(d.Mismatches), m.Path)
	}
	return pass(d, "%d blob(s), %d bytes match their recorded sha256 digests", d.Verified, d.Bytes)
}

func hashBlob(ctx context.Context, open Opener) (string, int64, error) {
	if open == nil {
		return "", 0, fmt.Errorf("no opener")
	}
	rc, err := open(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("open: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, rc})
	sum := hex.EncodeToString(h.Sum(nil)) // of every byte read, also when err is a digest mismatch
	if err != nil {
		return sum, n, fmt.Errorf("read: %w", err)
	}
	return sum, n, nil
}

// ctxReader stops a long read when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// sizeLimits bounds each file and the whole version, using recorded sizes
// (digest-integrity proves they are true).
type sizeLimits struct{ maxFile, maxTotal int64 }

type sizeParams struct {
	MaxFileBytes  int64 `yaml:"max_file_bytes"`
	MaxTotalBytes int64 `yaml:"max_total_bytes"`
}

func newSizeLimitsCheck(n *yaml.Node) (Check, error) {
	var p sizeParams
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if p.MaxFileBytes < 0 || p.MaxTotalBytes < 0 || (p.MaxFileBytes == 0 && p.MaxTotalBytes == 0) {
		return nil, errAt(n, "set max_file_bytes and/or max_total_bytes to positive byte counts")
	}
	return sizeLimits{maxFile: p.MaxFileBytes, maxTotal: p.MaxTotalBytes}, nil
}

func (sizeLimits) Name() string { return "size-limits" }

// SizeDetails lists files over the per-file limit and the total.
type SizeDetails struct {
	TotalBytes    int64    `json:"totalBytes"`
	MaxFileBytes  int64    `json:"maxFileBytes,omitempty"`
	MaxTotalBytes int64    `json:"maxTotalBytes,omitempty"`
	Oversized     []string `json:"oversized,omitempty"`
}

func (c sizeLimits) Run(_ context.Context, s *Subject) Result {
	d := SizeDetails{MaxFileBytes: c.maxFile, MaxTotalBytes: c.maxTotal}
	for _, f := range s.Files {
		if f.Size < 0 {
			return errored(d, "%s: negative recorded size", f.Path)
		}
		d.TotalBytes += f.Size
		if c.maxFile > 0 && f.Size > c.maxFile {
			d.Oversized = append(d.Oversized, fmt.Sprintf("%s (%d bytes)", f.Path, f.Size))
		}
	}
	if len(d.Oversized) > 0 {
		return fail(d, "%d file(s) over the %d-byte limit, first %s", len(d.Oversized), c.maxFile, d.Oversized[0])
	}
	if c.maxTotal > 0 && d.TotalBytes > c.maxTotal {
		return fail(d, "total size %d bytes is over the %d-byte limit", d.TotalBytes, c.maxTotal)
	}
	return pass(d, "%d file(s), %d bytes within limits", len(s.Files), d.TotalBytes)
}
