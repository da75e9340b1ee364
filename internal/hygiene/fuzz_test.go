package hygiene

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// FuzzClassify: bucket keys come from a listing that anything with write
// access to the bucket can influence. Whatever the key, classify must not
// panic, and a key it attributes to a family must be exactly the key the
// layout builds for that family, so gc never mistakes a foreign object for
// one of its own (nor the other way round).
func FuzzClassify(f *testing.F) {
	hex := strings.Repeat("ab", 32)
	for _, k := range []string{
		"blobs/sha256/" + hex, "scrub/sha256/" + hex, "signatures/sha256/" + hex + "/sha256-" + hex,
		"attestations/sha256/" + hex + "/sha256-" + hex + ".json", "refs/team/a/-/1.0.0", "refs/a/-/-/1.0.0",
		"refs/-/1.0.0", "blobs/sha256/" + hex + "/x", "misc", "", "refs/a/-/1.0.0/x",
		"intents/" + hex, "gc/sha256/" + hex, "gc/lease", "gc/lease/x", "intents/" + hex + "/x",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		fam, h := classify(key)
		dgst := v1.Hash{Algorithm: "sha256", Hex: h}
		switch fam {
		case famBlob:
			if registry.BlobKey(dgst) != key {
				t.Fatalf("%q classified as blob %s", key, h)
			}
		case famScrubMark:
			if registry.CorruptMarkKey(dgst) != key {
				t.Fatalf("%q classified as scrub mark of %s", key, h)
			}
		case famSignature, famAttestation:
			if !isHex(h) || !strings.Contains(key, "/sha256/"+h+"/") {
				t.Fatalf("%q classified as %s of %s", key, fam, h)
			}
		case famIntent:
			if registry.IntentKey(h) != key {
				t.Fatalf("%q classified as intent %s", key, h)
			}
		case famTombstone:
			if registry.TombstoneKey(dgst) != key {
				t.Fatalf("%q classified as tombstone of %s", key, h)
			}
		case famLease:
			if key != registry.GCLeaseKey {
				t.Fatalf("%q classified as the gc lease", key)
			}
		case famRef:
			name, version, ok := parseRefKey(key)
			if !ok || registry.RefKey(name, version) != key {
				t.Fatalf("%q classified as a ref of %q@%q", key, name, version)
			}
		}
	})
}

// FuzzParseIntent: an intent is read back from the bucket, which anything
// with write access to it can change. parseIntent must not panic, and what
// it accepts must be exactly digests it would write, one a line.
func FuzzParseIntent(f *testing.F) {
	hex := strings.Repeat("ab", 32)
	for _, s := range []string{"sha256:" + hex + "\n", "sha256:" + hex + "\nsha256:" + hex, "", "\n", "sha256:AB", "md5:" + hex + "\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		digests, err := parseIntent(data)
		if err != nil {
			return
		}
		var back strings.Builder
		for _, h := range digests {
			back.WriteString("sha256:" + h + "\n")
		}
		if got := strings.TrimSuffix(string(data), "\n"); got != strings.TrimSuffix(back.String(), "\n") {
			t.Fatalf("parseIntent(%q) = %q", data, digests)
		}
	})
}
