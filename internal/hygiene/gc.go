package hygiene

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/registry"
)

// MinGrace is the shortest grace period gc accepts, apart from an explicit
// zero. Publishes no longer need it (the handshake, see GC), but two
// writers still do, which store a blob before the index names it and
// write no intent: evidence (AddEvidence) and the copies a promotion makes
// into its target bucket. An hour is far longer than either takes between
// its first write and its commit; a zero grace is for a service that is
// stopped (or a test).
const MinGrace = time.Hour

// MinUploadGrace is the shortest age at which gc aborts an incomplete
// upload (a filesystem temp file, a MinIO multipart upload), also with a
// zero grace: nothing but its age tells an upload in progress from an
// abandoned one, and a large file takes a while to upload.
const MinUploadGrace = time.Hour

// minStagedGrace is the shortest age of the newest key of a chunked OCI
// upload at which gc removes the upload (registry.UploadTTL has why).
const minStagedGrace = registry.UploadTTL

// DefaultGrace is gc's grace period when none is given.
const DefaultGrace = 24 * time.Hour

// CheckGrace refuses a grace period between zero and MinGrace: short
// enough to race an evidence upload or a promotion, yet not an explicit
// "nothing is running".
func CheckGrace(g time.Duration) error {
	if g < 0 || (g > 0 && g < MinGrace) {
		return fmt.Errorf("grace %s: must be 0 (only when no promotion or evidence upload can run) or at least %s", g, MinGrace)
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
// ref objects themselves (they make the bucket self-describing); every
// digest a publish intent younger than registry.IntentTTL names. Keys of
// no known family are never removed, only counted.
//
// Removed (the sweep): blobs, parts objects (a blob kept in the chunks of
// its upload), signatures, attestations and scrub marks that nothing
// refers to AND that are older than the grace period; intents older than
// registry.IntentTTL; tombstones a failed run left; incomplete uploads
// (filesystem temp files, MinIO multipart uploads) started before the
// grace, and at least MinUploadGrace, ago; the keys of chunked OCI uploads
// under uploads/ whose newest is older than the grace and at least
// registry.UploadTTL, except the chunks a parts object names (those go in
// the run after the one that removed their parts object).
//
// # Concurrent publishes: the handshake
//
// A publish relies on blobs that may be old orphans (a client's HEAD found
// the blob, so it did not upload it again; a create-once write of a config
// or manifest found it stored). Age and the index alone cannot protect
// those: gc could re-check the index, the publish commit, and gc remove.
// So both sides write first and read second, in the metadata store
// (PostgreSQL or SQLite: every statement its own transaction, each write
// committed before the read that follows it starts, and visible to every
// read that starts after that):
//
//	publish (registry.Service.Publish)      gc (Run)
//	P1 commit an intent row: every digest   G1 take the lease row (one gc at
//	   the version will name (files,           a time per environment)
//	   config, manifest)                    G2 commit a tombstone row for
//	P2 read the lease; if held, wait until     every candidate digest
//	   no tombstone names one of the        G3 mark again: the intents younger
//	   digests (or fail: retry)                than IntentTTL, then index, refs
//	P3 stat the file blobs; write config,   G4 delete the unmarked candidates
//	   manifest, signatures (create-once)   G5 delete the tombstones
//	P4 commit, if within IntentTTL/2 of P1  G6 release the lease
//	P5 delete the intent row
//
// Claim: if gc deletes a digest D at G4 that a publish names, the publish
// either fails or re-creates D (config, manifest) or finds it missing at P3
// (files: blob_not_found) — it never commits a version naming a removed
// blob. Proof: G3's read of the intents did not see the publish's intent
// (else D is marked). If it began after P5, P4 had committed before, and
// G3's read of the index, which follows, sees the version (D is marked).
// So it began before P1 committed; hence G1 and G2(D) committed before P1
// did, so before P2 began. At P2 either the lease is gone — then G6, and so
// G4, ended before P2, and P3 comes after: the stat fails or the write
// re-creates D — or the lease is there, and the publish reads D's
// tombstone after G2(D) committed: present, it waits until G5 (after G4)
// removed it, then P3 follows; absent, G5 and so G4 ended already. The
// argument holds across service replicas and a gc on another host, since
// it rests only on the database's commit order. The one timing
// assumption: an intent is honoured for IntentTTL, and the publish
// refuses to commit more than half of that after writing it (the rest is
// margin for the commit itself and for clock skew between the publishing
// host and gc's, whose clocks date and judge intents). Publishes need no
// grace period at all: TestGCConcurrentPublishes races publishes reusing
// orphans against gc at grace 0. Being rows, the lease and tombstones
// work on a bucket under retention too.
//
// Earlier versions kept intents, the lease and tombstones as bucket
// objects (intents/, gc/): gc still honours young intent objects, refuses
// to run while a gc/lease object exists, and removes stale ones; all
// replicas must run this version before a gc does.
//
// Not covered by the handshake (they write no intent yet; a call of
// registry.AnnounceBlobs before their first write and of
// registry.IntentExpired before their commit would cover them): evidence
// blobs (AddEvidence stores the blob, then the index row) and promotion
// copies into the target environment's bucket. The grace (MinGrace)
// protects them, as before.
type GC struct {
	Bucket Bucket
	Index  Index
	Grace  time.Duration
	DryRun bool
	// Retained says the bucket keeps every object under retention (MinIO
	// object lock): removals fail until it ends (counted as Locked).
	Retained bool
	Now      func() time.Time
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
	Family string // blob, signature, attestation, scrub-mark, intent, tombstone, upload
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

// ErrLeaseHeld: another gc holds the environment's lease, or one crashed
// and left it.
var ErrLeaseHeld = errors.New("gc: another gc is running on this environment")

// maxIntentSize bounds an intent read back: a digest line (72 bytes) per
// file of the largest version, with room.
const maxIntentSize = 16 << 20

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
	var cands, stale []candidate
	uploads := map[string]*stagedUpload{}
	var partsObjects []string // hex of every parts object listed
	err := g.Bucket.List(ctx, "", func(info blob.Info) error {
		res.Scanned++
		fam, hex := classify(info.Key)
		switch {
		case fam == famUnknown:
			res.Unknown++
		case fam == famRef, fam == famLease:
		case fam == famIntent:
			// Read at the re-check while young; removed once stale.
			if start.Sub(info.ModTime) >= registry.IntentTTL {
				stale = append(stale, candidate{info: info, fam: fam, hex: hex})
			}
		case fam == famTombstone:
			stale = append(stale, candidate{info: info, fam: fam, hex: hex})
		case fam == famStaged:
			// Decided per upload below, once the parts objects are known.
			id := strings.SplitN(info.Key, "/", 3)[1]
			u := uploads[id]
			if u == nil {
				u = &stagedUpload{}
				uploads[id] = u
			}
			u.keys = append(u.keys, info)
			if info.ModTime.After(u.newest) {
				u.newest = info.ModTime
			}
		case fam == famParts && !info.ModTime.Before(cutoff):
			partsObjects = append(partsObjects, hex)
			res.Young++
		case fam == famParts:
			partsObjects = append(partsObjects, hex)
			cands = append(cands, candidate{info: info, fam: fam, hex: hex})
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
	staleStaged, young := g.staleUploads(ctx, mk.store, start, uploads, partsObjects)
	stale = append(stale, staleStaged...)
	res.Young += young

	m := newMarks()
	if err := mk.mark(ctx, m); err != nil {
		return res, fmt.Errorf("gc: nothing removed: %w", err)
	}
	if g.afterMark != nil {
		g.afterMark()
	}
	var doomed []candidate // unmarked after the first mark
	for _, c := range cands {
		if _, referenced := m.blobs[c.hex]; !referenced {
			doomed = append(doomed, c)
		}
	}

	if !g.DryRun {
		release, err := g.tombstone(ctx, start, doomed)
		// The lease and tombstones go last, whatever happened: until
		// then every publish that finds the lease checks tombstones.
		defer release()
		if err != nil {
			return res, err
		}
	}
	// The re-check (G3): the intents first, then the index and refs, so
	// that an intent its publish deleted before this read belongs to a
	// version committed before it, which the index read then sees.
	live, err := g.Index.LiveIntents(ctx, start.Add(-registry.IntentTTL))
	if err != nil {
		return res, fmt.Errorf("gc: nothing removed: reading intents: %w", err)
	}
	for _, d := range live {
		m.add(d, "publish intent")
	}
	if err := g.markIntents(ctx, mk.store, start, m); err != nil {
		return res, fmt.Errorf("gc: nothing removed: %w", err)
	}
	// Manifests expanded in the first pass are not read again.
	if err := mk.mark(ctx, m); err != nil {
		return res, fmt.Errorf("gc: nothing removed: %w", err)
	}
	res.Referenced = len(m.blobs)
	if g.beforeSweep != nil {
		g.beforeSweep()
	}

	for _, c := range doomed {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		// c.hex is the blob's own digest (blobs, scrub marks) or its
		// manifest's (signatures, attestations): either way, referenced
		// when the mark holds it.
		if _, referenced := m.blobs[c.hex]; referenced {
			continue
		}
		g.remove(ctx, &res, start, c)
	}
	for _, c := range stale {
		g.remove(ctx, &res, start, c)
	}
	if !g.DryRun {
		// Intents no longer honoured: their publishes gave up (a publish
		// deletes its own once it committed).
		if _, err := g.Index.DeleteIntentsBefore(ctx, start.Add(-registry.IntentTTL)); err != nil {
			return res, fmt.Errorf("gc: removing stale intents: %w", err)
		}
	}
	uploadCutoff := start.Add(-max(g.Grace, MinUploadGrace))
	if err := g.sweepUploads(ctx, uploadCutoff, start, &res); err != nil {
		return res, err
	}
	return res, nil
}

func (g *GC) remove(ctx context.Context, res *GCResult, start time.Time, c candidate) {
	r := Removal{Key: c.info.Key, Family: c.fam.String(), Size: c.info.Size, Age: start.Sub(c.info.ModTime)}
	if !g.DryRun {
		r.Err = g.Bucket.Delete(ctx, c.info.Key)
	}
	g.count(res, r)
}

// stagedUpload is what the listing found of one chunked OCI upload.
type stagedUpload struct {
	keys   []blob.Info
	newest time.Time
}

// staleUploads picks the keys of chunked uploads gc removes: those of an
// upload whose newest key is older than the grace for them (at least
// registry.UploadTTL: until then a request may still write or link it),
// except the chunks a parts object names, which hold a blob's bytes. A
// parts object written after the listing names an upload that was live
// when the listing began (registry.UploadTTL), so its chunks are not
// among these. A parts object that cannot be read keeps every upload (the
// run goes on): what it names is unknown. young counts the keys kept for
// their age or for a parts object.
func (g *GC) staleUploads(ctx context.Context, store *blob.Store, start time.Time, uploads map[string]*stagedUpload, partsObjects []string) (stale []candidate, young int) {
	named := map[string]bool{}
	for _, h := range partsObjects {
		parts, err := store.PartsOf(ctx, v1.Hash{Algorithm: "sha256", Hex: h})
		if errors.Is(err, blob.ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			for _, u := range uploads {
				young += len(u.keys)
			}
			return nil, young
		}
		for _, p := range parts {
			named[p.Key] = true
		}
	}
	cutoff := start.Add(-max(g.Grace, minStagedGrace))
	for _, u := range uploads {
		for _, info := range u.keys {
			if named[info.Key] || u.newest.After(cutoff) {
				young++
				continue
			}
			stale = append(stale, candidate{info: info, fam: famStaged})
		}
	}
	return stale, young
}

// tombstone takes the lease (G1) and writes a tombstone on every digest of
// doomed (G2). release deletes the tombstones (G5), then the lease (G6);
// it uses a context of its own, so that a cancelled run still cleans up.
func (g *GC) tombstone(ctx context.Context, start time.Time, doomed []candidate) (release func(), err error) {
	if info, err := g.Bucket.Stat(ctx, registry.GCLeaseKey); err == nil {
		return func() {}, fmt.Errorf("%w: %s exists (since %s): a gc of an earlier version runs, or crashed; if none runs, delete that object and run again",
			ErrLeaseHeld, registry.GCLeaseKey, info.ModTime.UTC().Format(time.RFC3339))
	}
	took, err := g.Index.TakeGCLease(ctx, start)
	if err != nil {
		return func() {}, fmt.Errorf("gc: taking the lease: %w", err)
	}
	if !took {
		held := ""
		if ok, since, err := g.Index.GCLease(ctx); err == nil && ok {
			held = fmt.Sprintf(" since %s", since.UTC().Format(time.RFC3339))
		}
		return func() {}, fmt.Errorf("%w: the lease is held%s; if no gc runs (one crashed), run `stagegate gc --break-lease`", ErrLeaseHeld, held)
	}
	release = func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		// All of them, not only this run's: under the lease, every
		// tombstone is gc's, and a failed run's leftovers go too.
		_ = g.Index.DeleteTombstones(cctx)
		_ = g.Index.ReleaseGCLease(cctx)
	}
	seen := map[string]bool{}
	var hexes []string
	for _, c := range doomed {
		if !seen[c.hex] {
			seen[c.hex] = true
			hexes = append(hexes, c.hex)
		}
	}
	if err := g.Index.WriteTombstones(ctx, hexes); err != nil {
		return release, fmt.Errorf("gc: nothing removed: writing tombstones: %w", err)
	}
	return release, nil
}

// markIntents marks every digest named by an intent object (of an earlier
// version's publish) younger than registry.IntentTTL: a publish in flight
// relies on them. Intent rows are marked by Run.
func (g *GC) markIntents(ctx context.Context, store *blob.Store, start time.Time, m *marks) error {
	return g.Bucket.List(ctx, registry.IntentsPrefix, func(info blob.Info) error {
		if fam, _ := classify(info.Key); fam != famIntent || start.Sub(info.ModTime) >= registry.IntentTTL {
			return nil
		}
		data, err := store.GetObject(ctx, info.Key, maxIntentSize)
		if errors.Is(err, registry.ErrObjectNotFound) {
			return nil // removed by another gc as stale meanwhile: no longer honoured
		}
		if err != nil {
			return fmt.Errorf("reading intent %s: %w", info.Key, err)
		}
		digests, err := parseIntent(data)
		if err != nil {
			return fmt.Errorf("intent %s: %w", info.Key, err)
		}
		for _, d := range digests {
			m.add(d, "publish intent "+info.Key)
		}
		return nil
	})
}

// parseIntent reads an intent: one sha256 digest a line. Any other line
// fails it (and so the run: what it names is unknown).
func parseIntent(data []byte) ([]string, error) {
	var out []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSuffix(line, "\n")
		d, err := registry.ParseDigest(line)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", truncateLine(line), err)
		}
		out = append(out, d.Hex)
	}
	return out, nil
}

func truncateLine(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
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
