package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI annotation keys used on stagegate manifests.
const (
	AnnotationTitle   = "org.opencontainers.image.title"   // a layer's file path
	AnnotationVersion = "org.opencontainers.image.version" // the canonical version
	AnnotationName    = "dev.stagegate.artifact.name"      // the artifact name
)

// Config is the config blob of a stagegate manifest. It holds only what
// defines the content: no timestamps or actors, so that publishing the same
// content twice yields the same manifest digest (the idempotence rule).
type Config struct {
	Kind         Kind              `json:"kind"`
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	SourceCommit string            `json:"sourceCommit,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// Built is a manifest and its config blob, serialised.
type Built struct {
	Manifest       []byte
	ManifestDigest v1.Hash
	Config         []byte
	ConfigDigest   v1.Hash
}

// BuildManifest serialises the OCI image manifest of a version. Layers are
// sorted by path so that the file order a client sends does not change the
// digest. The output is deterministic for equal inputs.
func BuildManifest(cfg Config, files []File) (Built, error) {
	configBytes, err := json.Marshal(cfg)
	if err != nil {
		return Built{}, err
	}
	configDigest := DigestOf(configBytes)
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	layers := make([]v1.Descriptor, 0, len(sorted))
	for _, f := range sorted {
		mt := f.MediaType
		if mt == "" {
			mt = DefaultFileMediaType
		}
		layers = append(layers, v1.Descriptor{
			MediaType:   types.MediaType(mt),
			Size:        f.Size,
			Digest:      f.Digest,
			Annotations: map[string]string{AnnotationTitle: f.Path},
		})
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  cfg.Kind.ArtifactType(),
		Config: v1.Descriptor{
			MediaType: ConfigMediaType,
			Size:      int64(len(configBytes)),
			Digest:    configDigest,
		},
		Layers: layers,
		Annotations: map[string]string{
			AnnotationName:    cfg.Name,
			AnnotationVersion: cfg.Version,
		},
	}
	manifestBytes, err := json.Marshal(m)
	if err != nil {
		return Built{}, err
	}
	if len(manifestBytes) > MaxManifestSize {
		// Refused here, at publish, so that no stored manifest is one that
		// readers (the manifest route, promotion) would refuse to read.
		return Built{}, CodeTooLarge.Errorf("the manifest of this version would have %d bytes, over the limit of %d bytes (%d MiB): publish fewer files or shorter paths",
			len(manifestBytes), MaxManifestSize, MaxManifestSize>>20)
	}
	return Built{
		Manifest:       manifestBytes,
		ManifestDigest: DigestOf(manifestBytes),
		Config:         configBytes,
		ConfigDigest:   configDigest,
	}, nil
}

// MaxManifestSize bounds every manifest: BuildManifest refuses to make a
// larger one, and every reader (ReadManifest, ParseManifest) refuses to read
// one. The one limit for all of them.
const MaxManifestSize = 4 << 20

// ParseManifest decodes and validates a stagegate manifest: OCI media type, a
// known artifact type, a config descriptor and one titled layer per file with
// safe, unique paths. It returns the files the manifest lists.
func ParseManifest(data []byte) (*v1.Manifest, []File, error) {
	bad := func(why string) error {
		return CodeInvalidRequest.Errorf("invalid manifest: %s", why)
	}
	if len(data) > MaxManifestSize {
		return nil, nil, bad("too large")
	}
	var m v1.Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, nil, bad("not JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		// One manifest is one JSON value: bytes after it would make two
		// byte strings (two digests) mean the same manifest.
		return nil, nil, bad("data after the JSON value")
	}
	if m.SchemaVersion != 2 || m.MediaType != types.OCIManifestSchema1 {
		return nil, nil, bad("not an OCI image manifest")
	}
	known := false
	for _, k := range Kinds {
		if k.ArtifactType() == m.ArtifactType {
			known = true
		}
	}
	if !known {
		return nil, nil, bad("unknown artifactType")
	}
	if m.Config.Digest.Algorithm != "sha256" || m.Config.MediaType != ConfigMediaType {
		return nil, nil, bad("missing stagegate config")
	}
	seen := make(map[string]bool, len(m.Layers))
	files := make([]File, 0, len(m.Layers))
	for _, l := range m.Layers {
		p, err := ParseFilePath(l.Annotations[AnnotationTitle])
		if err != nil {
			return nil, nil, bad("layer with invalid title")
		}
		if seen[p] {
			return nil, nil, bad("duplicate layer path")
		}
		seen[p] = true
		if _, err := ParseDigest(l.Digest.String()); err != nil || l.Size < 0 {
			return nil, nil, bad("layer with invalid digest or size")
		}
		files = append(files, File{Path: p, Digest: l.Digest, Size: l.Size, MediaType: string(l.MediaType)})
	}
	return &m, files, nil
}

// DigestOf is the sha256 digest of b.
func DigestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
