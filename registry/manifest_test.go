package registry

import (
	"testing"
)

func TestBuildManifestDeterministic(t *testing.T) {
	a := File{Path: "b.bin", Digest: DigestOf([]byte("b")), Size: 1}
	b := File{Path: "a.bin", Digest: DigestOf([]byte("a")), Size: 1, MediaType: "application/x-test"}
	cfg := Config{Kind: KindModel, Name: "m", Version: "1.0.0", Labels: map[string]string{"z": "1", "a": "2"}}
	one, err := BuildManifest(cfg, []File{a, b})
	if err != nil {
		t.Fatal(err)
	}
	two, err := BuildManifest(cfg, []File{b, a})
	if err != nil {
		t.Fatal(err)
	}
	if one.ManifestDigest != two.ManifestDigest {
		t.Fatalf("file order changed the manifest digest")
	}
	m, files, err := ParseManifest(one.Manifest)
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	if m.ArtifactType != "application/vnd.stagegate.model.v1" || len(files) != 2 || files[0].Path != "a.bin" || files[1].MediaType != DefaultFileMediaType {
		t.Fatalf("round trip: %s %+v", m.ArtifactType, files)
	}
	other, _ := BuildManifest(Config{Kind: KindModel, Name: "m", Version: "1.0.0"}, []File{a, b})
	if other.ManifestDigest == one.ManifestDigest {
		t.Fatalf("labels do not change the digest")
	}
}

func FuzzParseManifest(f *testing.F) {
	built, _ := BuildManifest(Config{Kind: KindAgentConfig, Name: "a", Version: "1.0.0"},
		[]File{{Path: "agent.yaml", Digest: DigestOf([]byte("x")), Size: 1}})
	f.Add(built.Manifest)
	f.Add([]byte(`{"schemaVersion":2}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, files, err := ParseManifest(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, fl := range files {
			if _, err := ParseFilePath(fl.Path); err != nil || seen[fl.Path] || fl.Size < 0 {
				t.Fatalf("accepted manifest with bad layer %+v", fl)
			}
			seen[fl.Path] = true
		}
	})
}
