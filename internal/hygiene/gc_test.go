package hygiene

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/registry"
)

func TestCheckGrace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		grace time.Duration
		ok    bool
	}{
		{0, true}, {MinGrace, true}, {DefaultGrace, true},
		{time.Second, false}, {MinGrace - time.Second, false}, {-time.Hour, false},
	} {
		if err := CheckGrace(tc.grace); (err == nil) != tc.ok {
			t.Errorf("CheckGrace(%s) = %v, want ok=%v", tc.grace, err, tc.ok)
		}
	}
	g := &GC{Grace: time.Minute}
	if _, err := g.Run(context.Background()); err == nil {
		t.Error("GC.Run accepted a one-minute grace")
	}
}

// TestGC builds a bucket with every kind of key, referenced or not, old or
// young, and checks what one collection removes.
func TestGC(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	v1 := f.mustPublish(pubReq{name: "team/a", version: "1.0.0", files: map[string][]byte{"a.bin": []byte("a"), "shared.bin": []byte("shared")}})
	evidence, _, err := f.ev.AddEvidence(ctx, f.env, audit.Actor{Name: "ci"}, "team/a", "1.0.0", registry.EvidenceMetrics, []byte(`{"auc":0.9}`))
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]bool{}
	for _, k := range f.keys() {
		before[k] = true
	}
	// A refused publish (same version, other content) leaves a file blob,
	// a config, a manifest and its signature that nothing refers to.
	_, err = f.publish(pubReq{name: "team/a", version: "1.0.0", files: map[string][]byte{"a.bin": []byte("other"), "shared.bin": []byte("shared")}})
	if err == nil || registry.AsError(err).Code != registry.CodeVersionExists.Name {
		t.Fatalf("second publish: %v, want version_exists", err)
	}
	var refused []string
	for _, k := range f.keys() {
		if !before[k] {
			refused = append(refused, k)
		}
	}
	orphan := f.upload([]byte("abandoned upload"))
	if err := blob.NewStore(f.bucket).MarkCorrupt(ctx, orphan, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, ".tmp", "put-crashed"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.root, "misc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "misc", "note.txt"), []byte("an operator's file"), 0o644); err != nil {
		t.Fatal(err)
	}
	staged := registry.UploadKey(strings.Repeat("ab", 16), "00000000000000000000.state")
	if err := os.MkdirAll(filepath.Dir(filepath.Join(f.root, staged)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, staged), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.ageAll(48 * time.Hour)
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(f.root, ".tmp", "put-crashed"), old, old); err != nil {
		t.Fatal(err)
	}
	young := f.upload([]byte("uploaded a moment ago"))

	signer, _ := testKeys()
	keySeg := strings.ReplaceAll(signer.KeyID(), ":", "-")
	cases := []struct {
		what    string
		key     string
		removed bool
	}{
		{"manifest of a version", registry.BlobKey(v1.ManifestDigest), false},
		{"file of a version", registry.BlobKey(v1.Files[0].Digest), false},
		{"another file of a version", registry.BlobKey(v1.Files[1].Digest), false},
		{"evidence of a version", registry.BlobKey(evidence.Digest), false},
		{"signature of a version", "signatures/sha256/" + v1.ManifestDigest.Hex + "/" + keySeg, false},
		{"cosign signature of a version", "signatures/sha256/" + v1.ManifestDigest.Hex + "/simplesigning/" + keySeg, false},
		{"ref of a version", registry.RefKey("team/a", "1.0.0"), false},
		{"abandoned upload", registry.BlobKey(orphan), true},
		{"scrub mark of an abandoned upload", registry.CorruptMarkKey(orphan), true},
		{"upload younger than the grace", registry.BlobKey(young), false},
		{"a key of no known family", "misc/note.txt", false},
		{"temp file of a crashed put", "(temp) put-crashed", true},
		{"part of an abandoned chunked upload", staged, true},
	}
	for _, k := range refused {
		cases = append(cases, struct {
			what    string
			key     string
			removed bool
		}{"leftover of a refused publish", k, true})
	}
	if len(refused) != 4 { // file, manifest, its two signatures (the config, naming only name@version, is v1's)
		t.Fatalf("refused publish left %d objects, want 4: %q", len(refused), refused)
	}

	for _, dry := range []bool{true, false} {
		t.Run(fmt.Sprintf("dry-run=%v", dry), func(t *testing.T) {
			res, removed := f.gc(DefaultGrace, dry)
			for _, tc := range cases {
				if _, got := removed[tc.key]; got != tc.removed {
					t.Errorf("%s (%s): removed=%v, want %v", tc.what, tc.key, got, tc.removed)
				}
				if tc.key[0] == '(' {
					continue
				}
				if want := !tc.removed || dry; f.has(tc.key) != want {
					t.Errorf("%s (%s): present=%v after gc, want %v", tc.what, tc.key, f.has(tc.key), want)
				}
			}
			var bytes int64
			for _, r := range removed {
				bytes += r.Size
			}
			if res.Removed != len(removed) || res.Bytes != bytes || res.Unknown != 1 || res.Young != 1 || res.Failed != 0 {
				t.Errorf("result %+v; reported %d removals of %d bytes", res, len(removed), bytes)
			}
		})
	}
	if err := f.verifyAll(); err != nil {
		t.Fatalf("after gc: %v", err)
	}
	// A second run finds nothing more.
	if res, _ := f.gc(DefaultGrace, false); res.Removed != 0 {
		t.Errorf("second gc removed %d objects", res.Removed)
	}
}

// TestGCRecheck: a version committed after gc's first mark, reusing an old
// orphan blob, keeps it: the re-check right before the sweep sees it.
func TestGCRecheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	data := []byte("weights uploaded long ago")
	dgst := f.upload(data)
	f.ageAll(48 * time.Hour)
	g := &GC{Bucket: f.bucket, Index: f.handle, Grace: DefaultGrace, afterMark: func() {
		f.mustPublish(pubReq{name: "late", version: "1.0.0", files: map[string][]byte{"w.bin": data}})
	}}
	if _, err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.has(registry.BlobKey(dgst)) {
		t.Fatal("gc removed a blob a version committed during the run refers to")
	}
	if err := f.verifyAll(); err != nil {
		t.Fatal(err)
	}
}

// TestGCUnreadableManifest: when a version's manifest cannot be read, its
// config blob is unknown, so gc removes nothing at all.
func TestGCUnreadableManifest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	v := f.mustPublish(pubReq{name: "x", version: "1.0.0", files: map[string][]byte{"f": []byte("f")}})
	orphan := f.upload([]byte("orphan"))
	f.ageAll(48 * time.Hour)
	if err := f.bucket.Delete(context.Background(), registry.BlobKey(v.ManifestDigest)); err != nil {
		t.Fatal(err)
	}
	g := &GC{Bucket: f.bucket, Index: f.handle, Grace: DefaultGrace}
	if _, err := g.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "nothing removed") {
		t.Fatalf("gc with a missing manifest: %v, want a refusal", err)
	}
	if !f.has(registry.BlobKey(orphan)) {
		t.Fatal("gc removed something despite refusing")
	}
}

// TestGCRefsAreRoots: with the metadata lost (before a reindex), the refs
// in the bucket still protect every version's content.
func TestGCRefsAreRoots(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.mustPublish(pubReq{name: "x", version: "1.0.0", files: map[string][]byte{"f": []byte("f")}})
	before := len(f.keys())
	f.ageAll(48 * time.Hour)
	f.openMeta(filepath.Join(t.TempDir(), "lost.db"))
	res, removed := f.gc(DefaultGrace, false)
	for key := range removed {
		t.Errorf("gc without metadata removed %s", key)
	}
	if res.Removed != 0 {
		t.Errorf("gc removed %d objects, want none", res.Removed)
	}
	if after := len(f.keys()); after != before {
		t.Fatalf("%d objects before, %d after", before, after)
	}
}

// TestGCConcurrentPublishes races publishes against gc running in a loop
// at grace 0, and checks that every committed version still verifies
// afterwards. Half the files of each publish are old orphans the client
// does not upload again (its HEAD found them): the case the grace period
// could never protect, which the tombstone handshake does. A publish may
// fail, retryably (blob_being_collected) or asking for an upload again
// (blob_not_found, after gc removed an orphan or a fresh upload first);
// none may commit a version naming a missing blob.
func TestGCConcurrentPublishes(t *testing.T) {
	t.Parallel()
	// One round catches a broken handshake only sometimes (with the
	// publish's lease check removed: 3 runs of 8); five rounds make that a
	// near-certain failure.
	for round := range 5 {
		t.Run(fmt.Sprint("round-", round), func(t *testing.T) { racePublishes(t, newFixture(t)) })
	}
}

func racePublishes(t *testing.T, f *fixture) {
	const orphans = 30
	orphan := func(i int) []byte { return fmt.Appendf(nil, "old orphan %d", i) }
	for i := range orphans {
		f.upload(orphan(i))
	}
	if f.root != "" { // at grace 0 age does not matter; it shows it
		f.ageAll(48 * time.Hour)
	}
	var (
		wg                          sync.WaitGroup
		stop                        atomic.Bool
		committed, refused, retried atomic.Int64
		done                        atomic.Int64
		runs, removed               atomic.Int64
	)
	wg.Go(func() {
		for !stop.Load() {
			g := &GC{Bucket: f.bucket, Index: f.handle, Grace: 0}
			res, err := g.Run(context.Background())
			if err != nil {
				t.Errorf("gc: %v", err)
				return
			}
			runs.Add(1)
			removed.Add(int64(res.Removed))
		}
	})
	for w := range 3 {
		wg.Go(func() {
			for i := range 15 {
				req := pubReq{name: fmt.Sprintf("p%d", w), version: fmt.Sprintf("1.0.%d", i),
					files: map[string][]byte{"a": fmt.Appendf(nil, "a %d %d", w, i), "b": []byte("shared between all")}}
				reused := map[string][]byte{"old": orphan((w*15 + i) % orphans)}
				// As a client would: on blob_not_found upload everything
				// and publish again, on blob_being_collected just again.
				for range 4 {
					_, err := f.publishReusing(req, reused)
					code := registry.AsError(err).Code
					if err == nil {
						committed.Add(1)
						break
					}
					if code == registry.CodeBlobNotFound.Name {
						refused.Add(1)
						maps.Copy(req.files, reused)
						reused = nil
						continue
					}
					if code == registry.CodeBlobCollected.Name {
						retried.Add(1)
						continue
					}
					t.Errorf("publish: %v", err)
					break
				}
				done.Add(1)
			}
		})
	}
	for done.Load() < 45 && !t.Failed() {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d gc runs removed %d objects; %d of 45 publishes committed; %d blob_not_found, %d blob_being_collected answers",
		runs.Load(), removed.Load(), committed.Load(), refused.Load(), retried.Load())
	if err := f.verifyAll(); err != nil {
		t.Fatalf("after %d gc runs: %v", runs.Load(), err)
	}
	if runs.Load() < 2 || committed.Load() == 0 {
		t.Errorf("%d gc runs, %d commits: the race did not happen", runs.Load(), committed.Load())
	}
	if f.has(registry.GCLeaseKey) {
		t.Error("the gc lease outlived the runs")
	}
}

// publishReusing publishes r (uploading its files) plus reused, files the
// client believes stored and does not upload.
func (f *fixture) publishReusing(r pubReq, reused map[string][]byte) (registry.VersionRecord, error) {
	var files []registry.File
	for p, data := range r.files {
		dgst := registry.DigestOf(data)
		if _, err := f.reg.UploadBlob(context.Background(), f.env, dgst, bytes.NewReader(data), int64(len(data))); err != nil {
			return registry.VersionRecord{}, err
		}
		files = append(files, registry.File{Path: p, Digest: dgst, Size: int64(len(data))})
	}
	for p, data := range reused {
		files = append(files, registry.File{Path: p, Digest: registry.DigestOf(data), Size: int64(len(data))})
	}
	res, err := f.reg.Publish(context.Background(), f.env, audit.Actor{Name: "ci"}, registry.PublishRequest{
		Name: r.name, Version: r.version, Kind: "generic", Files: files, Labels: r.labels, SourceCommit: r.commit})
	return res.Record, err
}

// TestGCHandshake drives each side of the handshake to the point the proof
// in GC's comment turns on, with the other side stepping in there.
func TestGCHandshake(t *testing.T) {
	t.Parallel()
	data := []byte("weights an abandoned publish uploaded")
	t.Run("intent before the re-check keeps the blob", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		dgst := f.upload(data)
		f.ageAll(48 * time.Hour)
		// A publish wrote its intent after gc's first mark, found no
		// lease, and has not committed yet when gc sweeps.
		g := &GC{Bucket: f.bucket, Index: f.handle, Grace: 0, afterMark: func() {
			if err := f.handle.WriteIntent(context.Background(), strings.Repeat("9", 32), []v1.Hash{dgst}, time.Now()); err != nil {
				t.Error(err)
			}
		}}
		if _, err := g.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !f.has(registry.BlobKey(dgst)) {
			t.Fatal("gc removed a blob a publish intent named")
		}
		f.mustPublishReusing("late", map[string][]byte{"w.bin": data})
		if err := f.verifyAll(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("tombstone before the intent: the publish waits and asks for an upload", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		dgst := f.upload(data)
		f.ageAll(48 * time.Hour)
		var pubErr error
		done := make(chan struct{})
		g := &GC{Bucket: f.bucket, Index: f.handle, Grace: 0, beforeSweep: func() {
			// Lease and tombstone are written, the re-check is over:
			// a publish now must not commit before the removal.
			go func() {
				defer close(done)
				_, pubErr = f.publishReusing(pubReq{name: "late", version: "1.0.0"}, map[string][]byte{"w.bin": data})
			}()
			time.Sleep(200 * time.Millisecond) // the publish reaches its tombstone wait
		}}
		if _, err := g.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-done
		if f.has(registry.BlobKey(dgst)) {
			t.Fatal("gc kept an orphan no intent named before its re-check")
		}
		if code := registry.AsError(pubErr).Code; code != registry.CodeBlobNotFound.Name {
			t.Fatalf("publish racing the removal: %v, want blob_not_found", pubErr)
		}
		if err := f.verifyAll(); err != nil {
			t.Fatal(err)
		}
		// Uploaded again, it publishes.
		f.mustPublishReusing("late", map[string][]byte{"w.bin": data}, data)
	})
	t.Run("tombstone that outlasts the wait: blob_being_collected", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		dgst := f.upload(data)
		ctx := context.Background()
		// Another gc's lease and tombstone.
		if took, err := f.handle.TakeGCLease(ctx, time.Now()); err != nil || !took {
			t.Fatalf("lease: %v %v", took, err)
		}
		if err := f.handle.WriteTombstones(ctx, []string{dgst.Hex}); err != nil {
			t.Fatal(err)
		}
		_, err := f.publishReusing(pubReq{name: "late", version: "1.0.0"}, map[string][]byte{"w.bin": data})
		if code := registry.AsError(err).Code; code != registry.CodeBlobCollected.Name {
			t.Fatalf("publish under a tombstone: %v, want blob_being_collected", err)
		}
		// A second gc refuses while the lease is there.
		g := &GC{Bucket: f.bucket, Index: f.handle, Grace: 0}
		if _, err := g.Run(ctx); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("gc under another's lease: %v, want ErrLeaseHeld", err)
		}
		if !f.has(registry.BlobKey(dgst)) {
			t.Fatal("a refused gc removed something")
		}
		// Without the lease a leftover tombstone is ignored by publishes
		// and removed by the next gc.
		if err := f.handle.ReleaseGCLease(ctx); err != nil {
			t.Fatal(err)
		}
		f.mustPublishReusing("late", map[string][]byte{"w.bin": data})
		if _, err := g.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if left, err := f.handle.Tombstoned(ctx, []string{dgst.Hex}); err != nil || len(left) != 0 {
			t.Fatalf("gc left a tombstone: %v %v", left, err)
		}
		if held, _, err := f.handle.GCLease(ctx); err != nil || held {
			t.Fatalf("gc left its lease: %v %v", held, err)
		}
		// A lease object of an earlier version's gc stops a gc too.
		if err := blob.NewStore(f.bucket).PutObject(ctx, registry.GCLeaseKey, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := g.Run(ctx); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("gc beside an earlier version's lease object: %v, want ErrLeaseHeld", err)
		}
	})
}

// mustPublishReusing publishes late@1.0.0 of reused files without
// uploading them, after uploading upload (if any).
func (f *fixture) mustPublishReusing(name string, reused map[string][]byte, upload ...[]byte) {
	f.t.Helper()
	for _, data := range upload {
		f.upload(data)
	}
	if _, err := f.publishReusing(pubReq{name: name, version: "1.0.0"}, reused); err != nil {
		f.t.Fatalf("publish %s: %v", name, err)
	}
}

// TestGCIntents: a young intent keeps what it names at grace 0 (a publish
// may still commit it); an old one is removed, and then keeps nothing.
func TestGCIntents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	young, old := f.upload([]byte("named by a young intent")), f.upload([]byte("named by an old intent"))
	f.ageAll(48 * time.Hour)
	store := blob.NewStore(f.bucket)
	youngKey, oldKey := registry.IntentKey(strings.Repeat("1", 64)), registry.IntentKey(strings.Repeat("2", 64))
	for key, d := range map[string]v1.Hash{youngKey: young, oldKey: old} {
		if err := store.PutObject(ctx, key, []byte(d.String()+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	f.age(oldKey, registry.IntentTTL+time.Minute)
	_, removed := f.gc(0, false)
	for key, want := range map[string]bool{youngKey: false, registry.BlobKey(young): false, oldKey: true} {
		if _, got := removed[key]; got != want {
			t.Errorf("%s: removed=%v, want %v", key, got, want)
		}
	}
	// A stale intent is not honoured: its publish can no longer commit.
	if _, got := removed[registry.BlobKey(old)]; !got {
		t.Errorf("the blob of a stale intent was kept")
	}
	// A corrupt young intent stops the run: what it names is unknown.
	if err := store.PutObject(ctx, registry.IntentKey(strings.Repeat("3", 64)), []byte("not a digest\n")); err != nil {
		t.Fatal(err)
	}
	g := &GC{Bucket: f.bucket, Index: f.handle, Grace: 0}
	if _, err := g.Run(ctx); err == nil || !strings.Contains(err.Error(), "nothing removed") {
		t.Fatalf("gc with a corrupt intent: %v, want a refusal", err)
	}
	if held, _, err := f.handle.GCLease(ctx); err != nil || held {
		t.Fatalf("a refused gc left its lease: %v %v", held, err)
	}
}

// TestGCIntentRows: intent rows, as publishes write them now: a young one
// keeps what it names; an old one is deleted and keeps nothing.
func TestGCIntentRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	young, old := f.upload([]byte("named by a young intent row")), f.upload([]byte("named by an old intent row"))
	f.ageAll(48 * time.Hour)
	if err := f.handle.WriteIntent(ctx, strings.Repeat("1", 32), []v1.Hash{young}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.handle.WriteIntent(ctx, strings.Repeat("2", 32), []v1.Hash{old}, time.Now().Add(-registry.IntentTTL-time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, removed := f.gc(0, false)
	if _, got := removed[registry.BlobKey(young)]; got {
		t.Error("gc removed a blob a young intent row names")
	}
	if _, got := removed[registry.BlobKey(old)]; !got {
		t.Error("gc kept the blob of a stale intent row")
	}
	live, err := f.handle.LiveIntents(ctx, time.Now().Add(-10*registry.IntentTTL))
	if err != nil || len(live) != 1 || live[0] != young.Hex {
		t.Fatalf("intent rows after gc: %v %v, want only the young one", live, err)
	}
}
