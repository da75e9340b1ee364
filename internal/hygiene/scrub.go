package hygiene

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/internal/blob"
)

// Scrub re-hashes every blob of one environment's bucket and reports each
// one whose bytes do not match its key, and each blob a version refers to
// that is missing. Blobs are streamed (memory stays bounded whatever their
// size). A corrupt blob is marked (registry.CorruptMarkKey), so that the
// next upload of the right bytes replaces it even when its size looks
// right. RepairFrom files whose sha256 is a corrupt or missing blob's
// digest are stored in its place (verified while they are written).
type Scrub struct {
	Bucket Bucket
	Index  Index
	// RepairFrom are local files holding known-good bytes.
	RepairFrom []string
	// NoMark leaves the bucket untouched (report only), except repairs.
	NoMark bool
	Now    func() time.Time
	Report func(Finding)
}

// Problem is what scrub found wrong with a blob, or did about it.
type Problem string

// Scrub findings.
const (
	Corrupt  Problem = "corrupt"  // stored bytes do not hash to the key
	Missing  Problem = "missing"  // a version refers to it, the bucket lacks it
	Repaired Problem = "repaired" // replaced by verified bytes from a RepairFrom file
)

// Finding is one blob scrub reports.
type Finding struct {
	Digest  v1.Hash
	Problem Problem
	Size    int64
	// Detail says what was found (the hash the bytes have) or who refers
	// to a missing blob, or which file repaired it.
	Detail string
}

// ScrubResult sums up a run. OK reports whether nothing is left wrong.
type ScrubResult struct {
	Checked  int   `json:"checked"`  // blobs re-hashed
	Bytes    int64 `json:"bytes"`    // their bytes
	Corrupt  int   `json:"corrupt"`  // corrupt and not repaired
	Missing  int   `json:"missing"`  // missing and not repaired
	Repaired int   `json:"repaired"` // replaced from --repair-from files
}

// OK is true when every blob verified, or was repaired.
func (r ScrubResult) OK() bool { return r.Corrupt == 0 && r.Missing == 0 }

// Run scrubs the bucket once.
func (s *Scrub) Run(ctx context.Context) (ScrubResult, error) {
	var res ScrubResult
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	repairs, err := hashFiles(ctx, s.RepairFrom)
	if err != nil {
		return res, err
	}
	store := blob.NewStore(s.Bucket)

	present := map[string]bool{}
	var bad []Finding
	err = s.Bucket.List(ctx, "blobs/sha256/", func(info blob.Info) error {
		fam, h := classify(info.Key)
		if fam != famBlob {
			return nil
		}
		present[h] = true
		dgst := v1.Hash{Algorithm: "sha256", Hex: h}
		size, err := store.VerifyBlob(ctx, dgst)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			// Removed since the listing (gc): not scrub's business.
			delete(present, h)
			return nil
		case errors.Is(err, blob.ErrDigestMismatch):
			bad = append(bad, Finding{Digest: dgst, Problem: Corrupt, Size: size, Detail: err.Error()})
		case err != nil:
			return fmt.Errorf("verifying %s: %w", dgst, err)
		}
		res.Checked++
		res.Bytes += size
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("scrub: %w", err)
	}
	// Blobs kept in the chunks of their upload, unless blobs/ holds them
	// too (reads prefer that one, verified above).
	err = s.Bucket.List(ctx, "parts/sha256/", func(info blob.Info) error {
		fam, h := classify(info.Key)
		if fam != famParts || present[h] {
			return nil
		}
		dgst := v1.Hash{Algorithm: "sha256", Hex: h}
		size, err := store.VerifyParts(ctx, dgst)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			return nil // removed since the listing (gc)
		case errors.Is(err, blob.ErrDigestMismatch):
			bad = append(bad, Finding{Digest: dgst, Problem: Corrupt, Size: size, Detail: err.Error()})
		case err != nil:
			return fmt.Errorf("verifying the parts of %s: %w", dgst, err)
		}
		present[h] = true
		res.Checked++
		res.Bytes += size
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("scrub: %w", err)
	}

	// Missing: what the versions and refs name that the listing lacked.
	// A manifest that is itself missing or corrupt cannot be expanded; it
	// is reported as such and its content is not checked further.
	mk := marker{bucket: s.Bucket, store: store, index: s.Index, skipBad: true}
	m := newMarks()
	if err := mk.mark(ctx, m); err != nil {
		return res, fmt.Errorf("scrub: %w", err)
	}
	var missing []string
	for h := range m.blobs {
		if !present[h] {
			missing = append(missing, h)
		}
	}
	sort.Strings(missing)
	for _, h := range missing {
		dgst := v1.Hash{Algorithm: "sha256", Hex: h}
		// Confirm: it may have been uploaded since the listing.
		if _, err := store.StatBlob(ctx, dgst); err == nil {
			continue
		}
		bad = append(bad, Finding{Digest: dgst, Problem: Missing, Detail: "referenced by " + m.blobs[h]})
	}

	for _, f := range bad {
		if f.Digest.Hex != "" {
			if path, ok := repairs[f.Digest.Hex]; ok {
				if err := s.repair(ctx, store, f.Digest, path); err != nil {
					return res, err
				}
				res.Repaired++
				s.report(Finding{Digest: f.Digest, Problem: Repaired, Size: f.Size, Detail: "from " + path})
				continue
			}
		}
		switch f.Problem {
		case Corrupt:
			res.Corrupt++
			if !s.NoMark {
				if err := store.MarkCorrupt(ctx, f.Digest, f.Detail, now()); err != nil {
					return res, fmt.Errorf("scrub: marking %s: %w", f.Digest, err)
				}
			}
		case Missing:
			res.Missing++
		}
		s.report(f)
	}
	return res, nil
}

func (s *Scrub) report(f Finding) {
	if s.Report != nil {
		s.Report(f)
	}
}

func (s *Scrub) repair(ctx context.Context, store *blob.Store, dgst v1.Hash, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("scrub: repair %s: %w", dgst, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("scrub: repair %s: %w", dgst, err)
	}
	if _, err := store.RepairBlob(ctx, dgst, f, fi.Size()); err != nil {
		return fmt.Errorf("scrub: repair %s from %s: %w", dgst, path, err)
	}
	return nil
}

// hashFiles maps the sha256 hex of each file to its path. The files are
// hashed up front, streamed: a repair then writes only bytes already known
// to be right (and verifies them again on the way in).
func hashFiles(ctx context.Context, paths []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("scrub: --repair-from: %w", err)
		}
		h := sha256.New()
		_, err = io.Copy(h, blob.ContextReader{Ctx: ctx, R: f})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("scrub: --repair-from %s: %w", p, err)
		}
		out[hex.EncodeToString(h.Sum(nil))] = p
	}
	return out, nil
}
