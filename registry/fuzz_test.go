package registry_test

import (
	"encoding/json"
	"io/fs"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stagegate/stagegate/registry"
)

// These targets complement FuzzParseName, FuzzParseVersion,
// FuzzParseFilePath (names_test.go) and FuzzParseManifest
// (manifest_test.go), which check that accepted input is safe. Here:
// accepted input is canonical and round-trips, and refusals carry their
// stable code and a bounded message. Each target needs its own name:
// `go test -fuzz` refuses a pattern that matches two targets.

// maxMessage bounds a refusal's text. Parsers echo the input truncated to
// 80 bytes, %q-quoted (at most 4 bytes per input byte), plus a fixed
// explanation.
const maxMessage = 600

// wantRefusal checks that err is the domain error a client sees for bad
// input: the expected code, kind Invalid, and a bounded message.
func wantRefusal(t *testing.T, err error, code registry.Code) {
	t.Helper()
	e := registry.AsError(err)
	if e.Code != code.Name || e.Kind != registry.Invalid {
		t.Fatalf("refusal %v has code %s (%s), want %s", err, e.Code, e.Kind, code.Name)
	}
	if e.Message == "" || len(e.Message) > maxMessage {
		t.Fatalf("refusal message of %d bytes: %q", len(e.Message), e.Message)
	}
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		registry.DigestOf([]byte("x")).String(),
		"sha256:" + strings.Repeat("A", 64),
		"sha512:" + strings.Repeat("a", 128),
		"sha256:" + strings.Repeat("a", 63),
		"sha256:" + strings.Repeat("a", 65),
		"sha256:",
		":abc",
		"sha256:" + strings.Repeat("g", 64),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Whatever the bytes, their own digest is a valid digest.
		if _, err := registry.ParseDigest(registry.DigestOf([]byte(s)).String()); err != nil {
			t.Fatalf("DigestOf(%q) does not parse: %v", s, err)
		}
		h, err := registry.ParseDigest(s)
		if err != nil {
			wantRefusal(t, err, registry.CodeInvalidDigest)
			return
		}
		// Accepted digests are already canonical: they name blob keys, so
		// two spellings of one digest must not exist.
		if h.String() != s || h.Algorithm != "sha256" || len(h.Hex) != 64 || strings.ToLower(h.Hex) != h.Hex {
			t.Fatalf("accepted non-canonical digest %q as %+v", s, h)
		}
		again, err := registry.ParseDigest(h.String())
		if err != nil || again != h {
			t.Fatalf("digest %q does not round-trip: %+v, %v", s, again, err)
		}
	})
}

func FuzzParseNameRoundTrip(f *testing.F) {
	for _, s := range []string{"fraud-detector", "team/nlp/tokenizer", "model_v2.onnx", "a/../b", "A", "a//b", strings.Repeat("a/", 101)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := registry.ParseName(s)
		if err != nil {
			wantRefusal(t, err, registry.CodeInvalidName)
			return
		}
		if name != s || path.Clean(name) != name || !fs.ValidPath(name) {
			t.Fatalf("accepted non-canonical name %q as %q", s, name)
		}
		if again, err := registry.ParseName(name); err != nil || again != name {
			t.Fatalf("name %q does not round-trip: %q, %v", name, again, err)
		}
		// A name can be laid out as directories (pull, bucket keys).
		if _, err := registry.ParseFilePath(name); err != nil {
			t.Fatalf("accepted name %q is not a valid file path: %v", name, err)
		}
	})
}

func FuzzParseVersionRoundTrip(f *testing.F) {
	for _, s := range []string{"1.2.3", "v1.2.3", "2.0.0-rc.1+build.5", "0.0.0", "1.0.0-0.a.b-c", "latest", "v", "1.2", "01.2.3", "1.2.3-01", "99999999999999999999.0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := registry.ParseVersion(s)
		if err != nil {
			wantRefusal(t, err, registry.CodeInvalidVersion)
			return
		}
		// Strict versions have one spelling, bar the optional "v".
		if v.Original != s || v.Canonical != strings.TrimPrefix(s, "v") || v.SemVer == nil || v.SemVer.String() != v.Canonical {
			t.Fatalf("ParseVersion(%q) = %+v", s, v)
		}
		for _, again := range []string{v.Canonical, "v" + v.Canonical} {
			w, err := registry.ParseVersion(again)
			if len(again) > registry.MaxVersionLength {
				continue
			}
			if err != nil || w.Canonical != v.Canonical || !w.SemVer.Equal(v.SemVer) {
				t.Fatalf("%q (from %q) does not round-trip: %+v, %v", again, s, w, err)
			}
		}
	})
}

func FuzzParseFilePathRoundTrip(f *testing.F) {
	for _, s := range []string{"model.safetensors", "shards/model-00001.safetensors", "tokenizer/vocab ü.txt", "a/./b", "a/../../x", "/etc/passwd", `a\b`, "a\u2028b", "a\x7f", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := registry.ParseFilePath(s)
		if err != nil {
			wantRefusal(t, err, registry.CodeInvalidPath)
			return
		}
		if p != s || path.Clean(p) != p || !fs.ValidPath(p) || !utf8.ValidString(p) || len(p) > registry.MaxPathLength {
			t.Fatalf("accepted non-canonical path %q as %q", s, p)
		}
		if strings.IndexFunc(p, unicode.IsControl) >= 0 {
			t.Fatalf("accepted control character in %q", p)
		}
		// A pull writes the file under its output directory, never beside it.
		if !filepath.IsLocal(filepath.FromSlash(p)) {
			t.Fatalf("path %q escapes its directory", p)
		}
		// What publish accepts, a manifest carries and gives back.
		in := registry.File{Path: p, Digest: registry.DigestOf([]byte(p)), Size: int64(len(p)), MediaType: registry.DefaultFileMediaType}
		built, err := registry.BuildManifest(registry.Config{Kind: registry.KindModel, Name: "m", Version: "1.0.0"}, []registry.File{in})
		if err != nil {
			t.Fatalf("BuildManifest: %v", err)
		}
		_, files, err := registry.ParseManifest(built.Manifest)
		if err != nil || len(files) != 1 || files[0] != in {
			t.Fatalf("path %q does not survive a manifest: %+v, %v", p, files, err)
		}
	})
}

func FuzzParseManifestRoundTrip(f *testing.F) {
	one := registry.File{Path: "agent.yaml", Digest: registry.DigestOf([]byte("x")), Size: 1}
	two := registry.File{Path: "shards/b.bin", Digest: registry.DigestOf([]byte("yy")), Size: 2, MediaType: "application/x-test"}
	for _, files := range [][]registry.File{nil, {one}, {one, two}} {
		built, err := registry.BuildManifest(registry.Config{Kind: registry.KindAgentConfig, Name: "a", Version: "1.0.0", Labels: map[string]string{"team": "nlp"}}, files)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(built.Manifest)
	}
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, files, err := registry.ParseManifest(data)
		if err != nil {
			wantRefusal(t, err, registry.CodeInvalidRequest)
			return
		}
		// A manifest is exactly one JSON value. Its digest covers every
		// byte, and readers disagree on data after the value: some stop
		// there, strict ones (encoding/json.Unmarshal) refuse it.
		if !json.Valid(data) {
			t.Fatalf("ParseManifest accepted data after the manifest's JSON value (it should require io.EOF after one value); input ends %q", data[max(0, len(data)-40):])
		}
		if m == nil || len(files) != len(m.Layers) || m.Config.Digest.Algorithm != "sha256" {
			t.Fatalf("accepted manifest without a file per layer: %d files, %d layers", len(files), len(m.Layers))
		}
		for i, fl := range files {
			l := m.Layers[i]
			if fl.Path != l.Annotations[registry.AnnotationTitle] || fl.Digest != l.Digest || fl.Size != l.Size || fl.MediaType != string(l.MediaType) {
				t.Fatalf("file %d %+v does not describe its layer %+v", i, fl, l)
			}
			if _, err := registry.ParseDigest(fl.Digest.String()); err != nil {
				t.Fatalf("file %d has digest %v: %v", i, fl.Digest, err)
			}
		}
		// The parsed manifest, encoded again, reads back to the same files.
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, files2, err := registry.ParseManifest(out)
		if err != nil || !reflect.DeepEqual(files2, files) || m2.ArtifactType != m.ArtifactType {
			t.Fatalf("manifest does not round-trip through %s: %v", out, err)
		}
	})
}
