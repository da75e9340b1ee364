package hygiene

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stagegate/stagegate/registry"
)

func TestScrub(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	files := map[string][]byte{
		"flipped.bin":   bytes.Repeat([]byte("weights "), 1000),
		"truncated.bin": bytes.Repeat([]byte("tokens "), 1000),
		"missing.bin":   []byte("config"),
		"fine.bin":      []byte("fine"),
	}
	v := f.mustPublish(pubReq{name: "m", version: "1.0.0", files: files})
	digest := map[string]registry.File{}
	for _, file := range v.Files {
		digest[file.Path] = file
	}
	path := func(name string) string {
		return filepath.Join(f.root, filepath.FromSlash(registry.BlobKey(digest[name].Digest)))
	}
	flipped := bytes.Clone(files["flipped.bin"])
	flipped[100] ^= 1
	if err := os.WriteFile(path("flipped.bin"), flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("truncated.bin"), files["truncated.bin"][:10], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path("missing.bin")); err != nil {
		t.Fatal(err)
	}

	scrub := func(repair ...string) (ScrubResult, map[registry.File]Problem) {
		t.Helper()
		found := map[registry.File]Problem{}
		byDigest := map[string]registry.File{}
		for _, file := range digest {
			byDigest[file.Digest.Hex] = file
		}
		s := &Scrub{Bucket: f.bucket, Index: f.handle, RepairFrom: repair, Report: func(fd Finding) {
			found[byDigest[fd.Digest.Hex]] = fd.Problem
		}}
		res, err := s.Run(ctx)
		if err != nil {
			t.Fatalf("scrub: %v", err)
		}
		return res, found
	}

	res, found := scrub()
	want := map[string]Problem{"flipped.bin": Corrupt, "truncated.bin": Corrupt, "missing.bin": Missing}
	for name, p := range want {
		if found[digest[name]] != p {
			t.Errorf("%s: %q, want %q", name, found[digest[name]], p)
		}
	}
	if len(found) != len(want) || res.OK() || res.Corrupt != 2 || res.Missing != 1 {
		t.Errorf("findings %v, result %+v", found, res)
	}
	// Scrub marked the corrupt blobs: a publish of the right bytes now
	// replaces even the same-size one.
	for _, name := range []string{"flipped.bin", "truncated.bin"} {
		if !f.has(registry.CorruptMarkKey(digest[name].Digest)) {
			t.Errorf("%s: no scrub mark", name)
		}
	}
	created, err := f.reg.UploadBlob(ctx, f.env, digest["flipped.bin"].Digest, bytes.NewReader(files["flipped.bin"]), int64(len(files["flipped.bin"])))
	if err != nil || !created {
		t.Fatalf("re-upload of the right bytes over a marked blob = %v, %v", created, err)
	}
	if f.has(registry.CorruptMarkKey(digest["flipped.bin"].Digest)) {
		t.Error("the replacing upload left the scrub mark")
	}

	// --repair-from: one good file, one file with the wrong bytes.
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens")
	wrong := filepath.Join(dir, "other")
	writeFile(t, good, files["truncated.bin"])
	writeFile(t, wrong, []byte("not what anyone needs"))
	res, found = scrub(good, wrong)
	if found[digest["truncated.bin"]] != Repaired || found[digest["missing.bin"]] != Missing || res.Repaired != 1 || res.OK() {
		t.Errorf("with repair files: findings %v, result %+v", found, res)
	}
	missingFile := filepath.Join(dir, "config")
	writeFile(t, missingFile, files["missing.bin"])
	res, found = scrub(missingFile)
	if !res.OK() || res.Repaired != 1 || len(found) != 1 {
		t.Errorf("repairing the missing blob: findings %v, result %+v", found, res)
	}
	res, found = scrub()
	if !res.OK() || len(found) != 0 || res.Checked != len(f.keysUnder("blobs/")) {
		t.Errorf("after repairs: findings %v, result %+v", found, res)
	}
	if err := f.verifyAll(); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) keysUnder(prefix string) []string {
	var out []string
	for _, k := range f.keys() {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			out = append(out, k)
		}
	}
	return out
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
