package oci

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

var testDigest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}

func TestParseCosignTag(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	tests := []struct {
		tag      string
		wantOK   bool
		wantKind CosignKind
	}{
		{"sha256-" + hex + ".sig", true, CosignSignature},
		{"sha256-" + hex + ".att", true, CosignAttestation},
		{"sha256-" + strings.ToUpper(hex) + ".sig", false, 0}, // one tag per manifest
		{"sha256-" + hex[:62] + ".sig", false, 0},
		{"sha256-" + hex[:62] + "zz.sig", false, 0},
		{"sha512-" + hex + ".sig", false, 0},
		{"sha256-" + hex + ".sbom", false, 0},
		{"1.2.3", false, 0},
		{".sig", false, 0},
		{"", false, 0},
	}
	for _, tt := range tests {
		h, kind, ok := ParseCosignTag(tt.tag)
		if ok != tt.wantOK {
			t.Errorf("ParseCosignTag(%q) ok = %v, want %v", tt.tag, ok, tt.wantOK)
			continue
		}
		if !ok {
			continue
		}
		if kind != tt.wantKind || h != testDigest {
			t.Errorf("ParseCosignTag(%q) = %v, %v", tt.tag, h, kind)
		}
		if got := CosignTag(h, kind); got != tt.tag {
			t.Errorf("CosignTag round trip = %q, want %q", got, tt.tag)
		}
	}
}

func FuzzParseCosignTag(f *testing.F) {
	f.Add("sha256-" + strings.Repeat("0", 64) + ".sig")
	f.Add("sha256-.att")
	f.Add("1.0.0")
	f.Fuzz(func(t *testing.T, tag string) {
		h, kind, ok := ParseCosignTag(tag)
		if ok && CosignTag(h, kind) != tag {
			t.Fatalf("accepted %q but it renders as %q", tag, CosignTag(h, kind))
		}
	})
}

// The payload must be what cosign's verifier unmarshals, or cosign verify
// rejects every signature with a claims error.
func TestSimpleSigningPayloadMatchesCosignSchema(t *testing.T) {
	b, err := SimpleSigningPayload("localhost:8080/prod/model", testDigest)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"critical":{"identity":{"docker-reference":"localhost:8080/prod/model"},"image":{"docker-manifest-digest":"sha256:` +
		testDigest.Hex + `"},"type":"cosign container image signature"},"optional":null}`
	if string(b) != want {
		t.Errorf("payload =\n%s\nwant\n%s", b, want)
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Critical.Image.DockerManifestDigest != testDigest.String() || p.Critical.Type != payload.CosignSignatureType {
		t.Errorf("cosign reads %+v", p.Critical)
	}
}

func TestBuildCosignManifest(t *testing.T) {
	sig := []byte("raw-signature")
	layer := CosignLayer{MediaType: SimpleSigningMediaType, Blob: []byte("payload"), Signature: sig}
	subject := &Subject{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: testDigest, Size: 123}
	tests := []struct {
		name         string
		kind         CosignKind
		subject      *Subject
		layer        CosignLayer
		artifactType string
		annotation   string
	}{
		{"signature by tag", CosignSignature, nil, layer, "", base64.StdEncoding.EncodeToString(sig)},
		{"signature referrer", CosignSignature, subject, layer, SignatureArtifactType, base64.StdEncoding.EncodeToString(sig)},
		{"attestation referrer", CosignAttestation, subject, CosignLayer{MediaType: DSSEMediaType, Blob: []byte("{}")}, AttestationArtifactType, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildCosignManifest(tt.kind, tt.subject, []CosignLayer{tt.layer})
			if err != nil {
				t.Fatal(err)
			}
			again, _ := BuildCosignManifest(tt.kind, tt.subject, []CosignLayer{tt.layer})
			if !bytes.Equal(got.Manifest, again.Manifest) {
				t.Error("not deterministic: a retried write would store a second manifest")
			}
			m, err := v1.ParseManifest(bytes.NewReader(got.Manifest))
			if err != nil {
				t.Fatal(err)
			}
			if h, _, _ := v1.SHA256(bytes.NewReader(got.Manifest)); h != got.Digest {
				t.Errorf("digest %v, manifest hashes to %v", got.Digest, h)
			}
			if h, _, _ := v1.SHA256(bytes.NewReader(got.Config)); h != m.Config.Digest {
				t.Errorf("config digest %v, config hashes to %v", m.Config.Digest, h)
			}
			if m.ArtifactType != tt.artifactType {
				t.Errorf("artifactType = %q, want %q", m.ArtifactType, tt.artifactType)
			}
			if (m.Subject != nil) != (tt.subject != nil) || (m.Subject != nil && m.Subject.Digest != testDigest) {
				t.Errorf("subject = %+v", m.Subject)
			}
			if len(m.Layers) != 1 || string(m.Layers[0].MediaType) != tt.layer.MediaType || m.Layers[0].Size != int64(len(tt.layer.Blob)) {
				t.Fatalf("layers = %+v", m.Layers)
			}
			if a, ok := m.Layers[0].Annotations[SignatureAnnotation]; !ok || a != tt.annotation {
				t.Errorf("signature annotation = %q, %v; want %q", a, ok, tt.annotation)
			}
		})
	}
}

// TestCosignGolden pins bytes the real cosign v2.6.5 accepted: a payload
// from SimpleSigningPayload with a host-less docker-reference ("dev/demo",
// verified as 127.0.0.1:5917/dev/demo:1.0.0; cosign's SimpleClaimVerifier
// compares only docker-manifest-digest), signed with cosign sign-blob, put
// in a manifest built by BuildCosignManifest and pushed under the .sig tag:
// `cosign verify --key cosign.pub --insecure-ignore-tlog=true
// --allow-http-registry` passed, and failed with another key. A change to
// either builder changes these digests and must be checked against cosign
// again.
func TestCosignGolden(t *testing.T) {
	subject := v1.Hash{Algorithm: "sha256", Hex: "e51626c1943b5f9345abc3de67d3ddef49b1ecd44764677737217b45fba645c3"}
	p, err := SimpleSigningPayload("dev/demo", subject)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hashOf(p), "sha256:07e04ab6985fbec8d6912664321a2301ddb0557e0ddef5c0ad5e3a577d798930"; got != want {
		t.Fatalf("payload %s, cosign verified %s: %s", got, want, p)
	}
	sig, _ := base64.StdEncoding.DecodeString("MEUCIQDlMzEWNMc62KRSzjJPWK2eKaHB+rItjNd0AZr6UpSLFAIgBwv2iKDqdhHqKiYBTy5mUnEsaPugiCPz3uD8lyKS8GM=")
	m, err := BuildCosignManifest(CosignSignature,
		&Subject{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: subject, Size: 423},
		[]CosignLayer{{MediaType: SimpleSigningMediaType, Blob: p, Signature: sig}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Digest.String(), "sha256:6efc72bc8ca061292b83f9d8b1ba40b1f267d7c8065723a97f082ac0406e9621"; got != want {
		t.Errorf("manifest %s, cosign verified %s: %s", got, want, m.Manifest)
	}
}
