package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/oci"
	"github.com/stagegate/stagegate/registry"
)

// TestOCICosignVerify: the real cosign CLI, in its native OCI mode,
// verifies a release's environment signature (`cosign verify`) and gate
// attestation (`cosign verify-attestation`) over the /v2 API with the
// environment's public key, and refuses a tampered signature or
// attestation, another environment's key, and a version with no
// attestation (dev: nothing admitted it).
func TestOCICosignVerify(t *testing.T) {
	t.Parallel()
	cosign := peerTool(t, "STAGEGATE_TEST_COSIGN", "cosign")
	s, rel := ociStack(t, "embedded")
	host := strings.TrimPrefix(s.url, "http://")
	ctx := context.Background()
	dir := t.TempDir()
	pub := map[string]string{}
	for _, env := range []string{"dev", "staging", "prod"} {
		pem, _, err := s.client(s.key(env, auth.RoleReader)).PublicKey(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		pub[env] = filepath.Join(dir, env+".pub")
		if err := os.WriteFile(pub[env], pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cosignRun := func(env string, args ...string) (string, error) {
		t.Helper()
		if out, err := runTool(t, dir, cosign, "login", host, "-u", "ci", "-p", s.key(env, auth.RoleReader)); err != nil {
			t.Fatalf("cosign login: %v\n%s", err, out)
		}
		return runTool(t, dir, cosign, append(args, "--insecure-ignore-tlog=true", "--allow-http-registry")...)
	}
	ref := func(env string) string { return host + "/" + env + "/" + rel.name + ":" + rel.version }
	verify := func(env, key string) (string, error) {
		return cosignRun(env, "verify", "--key", pub[key], ref(env))
	}
	attest := func(env, key string) (string, error) {
		return cosignRun(env, "verify-attestation", "--key", pub[key], "--type", "https://stagegate.dev/gates/v1", ref(env))
	}
	// refused checks that cosign refused for the reason given, not for a
	// failure to reach the registry or to log in.
	refused := func(what, out string, err error, reason string) {
		t.Helper()
		if err == nil || !strings.Contains(out, reason) {
			t.Errorf("%s: err %v, want a refusal with %q:\n%s", what, err, reason, out)
		}
	}

	for _, env := range []string{"dev", "staging", "prod"} {
		out, err := verify(env, env)
		if err != nil {
			t.Fatalf("cosign verify %s with %s.pub: %v\n%s", ref(env), env, err, out)
		}
		if !strings.Contains(out, `"docker-manifest-digest":"`+rel.digest+`"`) {
			t.Errorf("cosign verify %s printed no claim on %s:\n%s", env, rel.digest, out)
		}
	}
	for _, env := range []string{"staging", "prod"} {
		if out, err := attest(env, env); err != nil {
			t.Fatalf("cosign verify-attestation %s: %v\n%s", ref(env), err, out)
		}
	}
	out, err := attest("dev", "dev")
	refused("verify-attestation of a dev version (no gates admitted it)", out, err, "no matching attestations")
	out, err = verify("prod", "staging")
	refused("verify of a prod release with staging's key", out, err, "no matching signatures: invalid signature")
	out, err = attest("prod", "staging")
	refused("verify-attestation of a prod release with staging's key", out, err, "no matching attestations: accepted signatures do not match threshold")

	// The referrers API lists the same two artifacts, and the manifests and
	// blobs it names are served by digest.
	key := "Bearer " + s.key("prod", auth.RoleReader)
	base := s.url + "/v2/prod/" + rel.name
	resp, body := ociRequest(t, http.MethodGet, base+"/referrers/"+rel.digest, key)
	var index struct {
		Manifests []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
			Size         int    `json:"size"`
		} `json:"manifests"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &index) != nil || len(index.Manifests) != 2 {
		t.Fatalf("referrers: %d %s", resp.StatusCode, body)
	}
	for _, m := range index.Manifests {
		resp, mbody := ociRequest(t, http.MethodGet, base+"/manifests/"+m.Digest, key)
		if resp.StatusCode != http.StatusOK || registry.DigestOf(mbody).String() != m.Digest || len(mbody) != m.Size {
			t.Fatalf("referrer manifest %s: %d %s", m.Digest, resp.StatusCode, mbody)
		}
		var man struct {
			ArtifactType string `json:"artifactType"`
			Subject      struct {
				Digest string `json:"digest"`
			} `json:"subject"`
			Config struct {
				Digest string `json:"digest"`
			} `json:"config"`
			Layers []struct {
				Digest string `json:"digest"`
			} `json:"layers"`
		}
		if err := json.Unmarshal(mbody, &man); err != nil || man.Subject.Digest != rel.digest || man.ArtifactType != m.ArtifactType {
			t.Fatalf("referrer manifest %s: %v %s", m.Digest, err, mbody)
		}
		for _, d := range append([]string{man.Config.Digest}, man.Layers[0].Digest) {
			resp, b := ociRequest(t, http.MethodGet, base+"/blobs/"+d, key)
			if resp.StatusCode != http.StatusOK || registry.DigestOf(b).String() != d {
				t.Errorf("blob %s of referrer %s: %d", d, m.Digest, resp.StatusCode)
			}
			// Built blobs are the repository's: another name does not serve them.
			if resp, _ := ociRequest(t, http.MethodGet, s.url+"/v2/prod/other/blobs/"+d, key); resp.StatusCode != http.StatusNotFound {
				t.Errorf("blob %s under another name: %d, want 404", d, resp.StatusCode)
			}
		}
	}
	resp, body = ociRequest(t, http.MethodGet, base+"/referrers/"+rel.digest+"?artifactType="+url.QueryEscape(oci.AttestationArtifactType), key)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("OCI-Filters-Applied") != "artifactType" ||
		json.Unmarshal(body, &index) != nil || len(index.Manifests) != 1 || index.Manifests[0].ArtifactType != oci.AttestationArtifactType {
		t.Fatalf("filtered referrers: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// A dev key reading prod's cosign tag is refused like any other read.
	sigTag := "sha256-" + strings.TrimPrefix(rel.digest, "sha256:") + ".sig"
	if resp, body := ociRequest(t, http.MethodGet, base+"/manifests/"+sigTag, "Bearer "+s.key("dev", auth.RoleAdmin)); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "DENIED") {
		t.Errorf("dev key reading prod's signature: %d %s", resp.StatusCode, body)
	}

	// Tampering: prod's stored signature replaced by staging's (a valid
	// signature, over another payload), prod's attestation by staging's.
	digestHex := strings.TrimPrefix(rel.digest, "sha256:")
	tamper := func(family string) {
		t.Helper()
		match := func(env string) string {
			ms, _ := filepath.Glob(filepath.Join(s.cfg.BlobDir(env), family, "sha256", digestHex, "*"))
			if family == "signatures" {
				ms, _ = filepath.Glob(filepath.Join(s.cfg.BlobDir(env), family, "sha256", digestHex, "simplesigning", "*"))
			}
			if len(ms) != 1 {
				t.Fatalf("%s of %s in %s: %v", family, rel.digest, env, ms)
			}
			return ms[0]
		}
		from, err := os.ReadFile(match("staging"))
		if err != nil {
			t.Fatal(err)
		}
		to := match("prod")
		_ = os.Chmod(to, 0o600)
		if err := os.WriteFile(to, from, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tamper("signatures")
	out, err = verify("prod", "prod")
	refused("verify over a tampered signature", out, err, "no matching signatures: invalid signature")
	tamper("attestations")
	out, err = attest("prod", "prod")
	refused("verify-attestation over a tampered attestation", out, err, "no matching attestations: accepted signatures do not match threshold")
}
