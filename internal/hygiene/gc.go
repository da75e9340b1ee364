package hygiene

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stagegate/stagegate/internal/blob"
)

// MinGrace is the shortest grace period gc accepts, apart from an explicit
// zero. Grace is what protects a publish in flight: its blobs are uploaded
// before the version is committed, and until then nothing refers to them.
// An hour is far longer than any publish takes between its last upload and
// its commit; a zero grace is for a service that is stopped (or a test).
const MinGrace = time.Hour

// DefaultGrace is gc's grace period when none is given.
const DefaultGrace = 24 * time.Hour

// CheckGrace refuses a grace period between zero and MinGrace: short
// enough to race a publish, yet not an explicit "nothing is running".
func CheckGrace(g time.Duration) error {
	if g < 0 || (g > 0 && g < MinGrace) {
		return fmt.Errorf("grace %s: must be 0 (only when no publish can run) or at least %s", g, MinGrace)
	}
	return nil
}

// GC removes what no version refers to from one environment's bucket.
//
// Referenced, and never removed (the mark): for every version in the
// metadata index and every ref object in the bucket, its manifest blob,
// the config and file blobs the manifest names (and the files the index
// lists), and the version's evidence blobs; signatures and attestations
// under a referenced manifest's digest; scrub's mark on a referenced blob;
// ref objects themselves (they make the bucket self-describing). Keys of no
// known family are never removed, only counted.
//
// Removed (the sweep): blobs, signatures, attestations and scrub marks that
// nothing refers to AND that are older than the grace period; incomplete
// uploads (filesystem temp files, MinIO multipart uploads) started before
// it.
//
// Safety with concurrent publishes rests on two guards. The grace period:
// a publish uploads its blobs (and writes its manifest and signature)
// before it commits the version, and an object younger than the grace is
// never a candidate. The re-check: right before sweeping, the mark is taken
// again, so a version committed since the first mark keeps what it refers
// to. What the guards leave open is named in the README (a publish that
// reuses an orphan older than the grace and commits between the re-check
// and the removal).
type GC struct {
	Bucket Bucket
	Index  Index
	Grace  time.Duration
	DryRun bool
	Now    func() time.Time
	// Report is called for each object removed (or, with DryRun, that
	// would be), and each one that could not be (Removal.Err).
	Report func(Removal)

	// beforeSweep runs between the re-check and the sweep (tests of the
	// re-check).
	beforeSweep func()
	// afterMark runs between the first mark and the re-check.
	afterMark func()
}

// Removal is one object gc removed or skipped.
type Removal struct {
	Key    string
	Family string // blob, signature, attestation, scrub-mark, upload
	Size   int64
	Age    time.Duration
	// Err is why it was not removed: blob.ErrLocked under retention, or a
	// storage error. Nil when removed (or with DryRun, removable).
	Err error
}

// GCResult sums up a run.
type GCResult struct {
	Scanned    int   `json:"scanned"`    // objects listed
	Referenced int   `json:"referenced"` // distinct blobs referenced
	Removed    int   `json:"removed"`    // objects removed (DryRun: removable)
	Bytes      int64 `json:"bytes"`      // their bytes
	Locked     int   `json:"locked"`     // skipped: under retention
	Failed     int   `json:"failed"`     // removal failed for another reason
	Young      int   `json:"young"`      // within the grace period (referenced or not)
	Unknown    int   `json:"unknown"`    // keys of no known family, kept
}

type candidate struct {
	info blob.Info
	fam  family
	hex  string
}

// Run performs one collection.
func (g *GC) Run(ctx context.Context) (GCResult, error) {
	if err := CheckGrace(g.Grace); err != nil {
		return GCResult{}, err
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	start := now()
	cutoff := start.Add(-g.Grace)
	var res GCResult

	// List first, mark second: an object listed here that a version
	// committed after the listing refers to is caught by the mark or the
	// re-check, never the other way round.
	var cands []candidate
	err := g.Bucket.List(ctx, "", func(info blob.Info) error {
		res.Scanned++
		fam, hex := classify(info.Key)
		switch {
		case fam == famUnknown:
			res.Unknown++
		case fam == famRef:
		case !info.ModTime.Before(cutoff):
			res.Young++
		default:
			cands = append(cands, candidate{info: info, fam: fam, hex: hex})
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("gc: listing the bucket: %w", err)
	}

	mk := marker{bucket: g.Bucket, store: blob.NewStore(g.Bucket), index: g.Index}
	m := newMarks()
	if err := mk.mark(ctx, m); err != nil {
		return res, fmt.Errorf("gc: nothing removed: %w", err)
	}
	if g.afterMark != nil {
		g.afterMark()
	}
	// The re-check. Manifests expanded in the first pass are not read again.
	if err := mk.mark(ctx, m); err != nil {
		return res, fmt.Errorf("gc: nothing removed: %w", err)
	}
	res.Referenced = len(m.blobs)
	if g.beforeSweep != nil {
		g.beforeSweep()
	}

	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		// c.hex is the blob's own digest (blobs, scrub marks) or its
		// manifest's (signatures, attestations): either way, referenced
		// when the mark holds it.
		if _, referenced := m.blobs[c.hex]; referenced {
			continue
		}
		r := Removal{Key: c.info.Key, Family: c.fam.String(), Size: c.info.Size, Age: start.Sub(c.info.ModTime)}
		if !g.DryRun {
			r.Err = g.Bucket.Delete(ctx, c.info.Key)
		}
		g.count(&res, r)
	}
	if err := g.sweepUploads(ctx, cutoff, start, &res); err != nil {
		return res, err
	}
	return res, nil
}

func (g *GC) count(res *GCResult, r Removal) {
	switch {
	case r.Err == nil:
		res.Removed++
		res.Bytes += r.Size
	case errors.Is(r.Err, blob.ErrLocked):
		res.Locked++
	default:
		res.Failed++
	}
	if g.Report != nil {
		g.Report(r)
	}
}

// sweepUploads aborts incomplete uploads started before cutoff, when the
// driver keeps any.
func (g *GC) sweepUploads(ctx context.Context, cutoff, start time.Time, res *GCResult) error {
	up, ok := g.Bucket.(blob.Uploads)
	if !ok || !blob.Has[blob.Uploads](g.Bucket) {
		return nil
	}
	var old []blob.Upload
	if err := up.ListUploads(ctx, func(u blob.Upload) error {
		if u.Started.Before(cutoff) {
			old = append(old, u)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("gc: listing incomplete uploads: %w", err)
	}
	for _, u := range old {
		key := u.Key
		if key == "" {
			key = "(temp) " + u.ID
		}
		r := Removal{Key: key, Family: "upload", Size: u.Size, Age: start.Sub(u.Started)}
		if !g.DryRun {
			r.Err = up.AbortUpload(ctx, u)
		}
		g.count(res, r)
	}
	return nil
}
