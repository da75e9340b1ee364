package hygiene

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/registry"
)

// TestReindex publishes versions, loses the metadata, rebuilds it from the
// bucket and compares what the index answers.
func TestReindex(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	published := []pubReq{
		{name: "team/fraud", version: "1.0.0", files: map[string][]byte{"model.bin": []byte("w1"), "tokenizer/vocab.txt": []byte("a b c")},
			labels: map[string]string{"team": "risk"}, commit: "abc123"},
		{name: "team/fraud", version: "v1.1.0-rc.1", files: map[string][]byte{"model.bin": []byte("w2")}},
		{name: "other", version: "0.1.0", files: map[string][]byte{"x": []byte("x")}},
	}
	for _, r := range published {
		f.mustPublish(r)
	}
	type listing map[string][]registry.VersionRecord
	snapshot := func() (listing, map[string]registry.VersionRecord) {
		t.Helper()
		list, got := listing{}, map[string]registry.VersionRecord{}
		arts, err := f.handle.ListArtifacts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range arts {
			vs, err := f.handle.ListVersions(ctx, a.Name)
			if err != nil {
				t.Fatal(err)
			}
			list[a.Name] = vs
			for _, v := range vs {
				rec, err := f.handle.GetVersion(ctx, v.Name, v.Version)
				if err != nil {
					t.Fatal(err)
				}
				got[v.Name+"@"+v.Version] = rec
			}
		}
		return list, got
	}
	beforeList, before := snapshot()

	f.openMeta(filepath.Join(t.TempDir(), "rebuilt.db"))
	r := &Reindex{Bucket: f.bucket, Index: f.handle, Environment: "dev", Verifier: f.keys_}
	res, err := r.Run(ctx)
	if err != nil || res.Added != 3 || !res.OK() {
		t.Fatalf("reindex = %+v, %v", res, err)
	}
	afterList, after := snapshot()

	// What the bucket cannot know, and the creation time, which it knows
	// only as when the ref was written (just after the commit).
	unrecoverable := cmp.Options{
		cmp.FilterPath(func(p cmp.Path) bool {
			switch p.Last().String() {
			case ".CreatedAt", ".CreatedBy", ".OriginalVersion", ".CISignature":
				return true
			}
			return false
		}, cmp.Ignore()),
	}
	if diff := cmp.Diff(beforeList, afterList, unrecoverable); diff != "" {
		t.Errorf("ListVersions after reindex (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(before, after, unrecoverable); diff != "" {
		t.Errorf("GetVersion after reindex (-before +after):\n%s", diff)
	}
	for k, b := range before {
		a := after[k]
		if d := a.CreatedAt.Sub(b.CreatedAt); d < -time.Second || d > 5*time.Second {
			t.Errorf("%s: created %s, recovered %s", k, b.CreatedAt, a.CreatedAt)
		}
		if a.CreatedBy != "reindex" || a.CISignature != registry.CIAbsent || a.OriginalVersion != a.Version {
			t.Errorf("%s: recovered %q %q %q", k, a.CreatedBy, a.CISignature, a.OriginalVersion)
		}
		if len(a.Signatures) != 1 || a.Signatures[0].Role != registry.SignedByEnvironment {
			t.Errorf("%s: signatures %+v", k, a.Signatures)
		}
	}
	if err := f.verifyAll(); err != nil {
		t.Fatal(err)
	}

	// Twice is a no-op.
	res, err = r.Run(ctx)
	if err != nil || res.Present != 3 || res.Added != 0 || !res.OK() {
		t.Fatalf("second reindex = %+v, %v", res, err)
	}
}

// TestReindexConflictsAndDamage: a ref whose name@version the index holds
// with another digest is a conflict, and a ref whose manifest is damaged is
// reported; neither stops the others.
func TestReindexConflictsAndDamage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	a := f.mustPublish(pubReq{name: "a", version: "1.0.0", files: map[string][]byte{"f": []byte("a")}})
	f.mustPublish(pubReq{name: "b", version: "1.0.0", files: map[string][]byte{"f": []byte("b")}})
	c := f.mustPublish(pubReq{name: "c", version: "1.0.0", files: map[string][]byte{"f": []byte("c")}})
	d := f.mustPublish(pubReq{name: "d", version: "1.0.0", files: map[string][]byte{"f": []byte("d")}})
	f.openMeta(filepath.Join(t.TempDir(), "rebuilt.db"))
	// The new index already has a@1.0.0 with other content.
	other := a
	other.ManifestDigest = c.ManifestDigest
	other.Signatures = nil
	if _, _, err := f.handle.CommitVersion(ctx, other, registryEvent()); err != nil {
		t.Fatal(err)
	}
	if err := f.bucket.Delete(ctx, registry.BlobKey(c.ManifestDigest)); err != nil {
		t.Fatal(err)
	}
	// d's only signature is replaced by one over other bytes.
	signer, _ := testKeys()
	forged, err := signer.SignBlob([]byte("something else"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.bucket.(blob.Replacer).Replace(ctx, registry.SignatureKey(d.ManifestDigest, signer.KeyID()), strings.NewReader(forged), int64(len(forged))); err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	r := &Reindex{Bucket: f.bucket, Index: f.handle, Environment: "dev", Verifier: f.keys_, Report: func(x Reindexed) { outcomes[x.Name] = x.Outcome }}
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "conflict", "b": "added", "c": "unreadable", "d": "unreadable"}
	if diff := cmp.Diff(want, outcomes); diff != "" || res.OK() {
		t.Errorf("outcomes (-want +got):\n%s; result %+v", diff, res)
	}
}

func registryEvent() audit.Event {
	return audit.Actor{Name: "test"}.Event("dev", "test", "a@1.0.0", audit.Success)
}
