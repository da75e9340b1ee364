package hygiene

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
		{"ref of a version", registry.RefKey("team/a", "1.0.0"), false},
		{"abandoned upload", registry.BlobKey(orphan), true},
		{"scrub mark of an abandoned upload", registry.CorruptMarkKey(orphan), true},
		{"upload younger than the grace", registry.BlobKey(young), false},
		{"a key of no known family", "misc/note.txt", false},
		{"temp file of a crashed put", "(temp) put-crashed", true},
	}
	for _, k := range refused {
		cases = append(cases, struct {
			what    string
			key     string
			removed bool
		}{"leftover of a refused publish", k, true})
	}
	if len(refused) != 3 { // file, manifest, signature (the config, naming only name@version, is v1's)
		t.Fatalf("refused publish left %d objects, want 3: %q", len(refused), refused)
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
	if res, removed := f.gc(DefaultGrace, false); res.Removed != 0 {
		t.Fatalf("gc without metadata removed %v", removed)
	}
	if after := len(f.keys()); after != before {
		t.Fatalf("%d objects before, %d after", before, after)
	}
}

// TestGCConcurrentPublishes races publishes of fresh content against gc
// running in a loop, and checks that every committed version still
// verifies afterwards. gc runs with the minimum grace against orphans made
// old beforehand, so it has work to do while publishes commit. (With a zero
// grace the same race loses committed blobs, and even in-flight temp
// files: a zero grace is only for a stopped service; see the README.)
func TestGCConcurrentPublishes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 20 {
		f.upload(fmt.Appendf(nil, "old orphan %d", i))
	}
	f.ageAll(48 * time.Hour)
	var (
		wg        sync.WaitGroup
		stop      atomic.Bool
		committed atomic.Int64
		runs      atomic.Int64
	)
	wg.Go(func() {
		for !stop.Load() {
			g := &GC{Bucket: f.bucket, Index: f.handle, Grace: MinGrace}
			if _, err := g.Run(context.Background()); err != nil {
				t.Errorf("gc: %v", err)
				return
			}
			runs.Add(1)
		}
	})
	for w := range 3 {
		wg.Go(func() {
			for i := range 15 {
				_, err := f.publish(pubReq{name: fmt.Sprintf("p%d", w), version: fmt.Sprintf("1.0.%d", i),
					files: map[string][]byte{"a": fmt.Appendf(nil, "a %d %d", w, i), "b": []byte("shared between all")}})
				if err != nil {
					t.Errorf("publish: %v", err)
					continue
				}
				committed.Add(1)
			}
		})
	}
	for committed.Load() < 45 && !t.Failed() {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if err := f.verifyAll(); err != nil {
		t.Fatalf("after %d gc runs: %v", runs.Load(), err)
	}
	if runs.Load() < 2 {
		t.Errorf("gc ran only %d times during the publishes", runs.Load())
	}
	// The old orphans are gone.
	res, _ := f.gc(MinGrace, true)
	if res.Removed != 0 {
		t.Errorf("%d old orphans survived the racing gc runs", res.Removed)
	}
}
