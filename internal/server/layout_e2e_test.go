package server_test

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// layoutPatterns reads the bucket tree drawn in registry/layout.go and turns
// each drawn key into a pattern, so the drawing is what the test checks.
func layoutPatterns(t *testing.T) map[string]*regexp.Regexp {
	t.Helper()
	src, err := os.ReadFile("../../registry/layout.go")
	if err != nil {
		t.Fatal(err)
	}
	placeholders := strings.NewReplacer(
		`<hex>`, `[0-9a-f]{64}`, `<manifest hex>`, `[0-9a-f]{64}`,
		`<name>`, `[a-z0-9][a-z0-9./-]*`, `<version>`, `[^/]+`, `<key id>`, `sha256-[0-9a-f]{64}`,
		`<gate run id>`, `gr_[0-9a-f]{24}`, `<upload id>`, `[0-9a-f]{32}`, `<offset>`, `[0-9]{20}`)
	drawn := regexp.MustCompile(`──\s+(.+?)(?:\s{2,}|$)`)
	out := map[string]*regexp.Regexp{}
	for _, line := range strings.Split(string(src), "\n") {
		m := drawn.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key := m[1]
		out[key] = regexp.MustCompile("^" + placeholders.Replace(regexp.QuoteMeta(key)) + "$")
	}
	if len(out) == 0 {
		t.Fatal("registry/layout.go draws no keys")
	}
	return out
}

// TestBucketLayout: everything a publish, evidence, a promotion and a
// rollback write into the buckets is a key of the drawn layout, and every
// drawn key occurs.
func TestBucketLayout(t *testing.T) {
	s := permissiveStagingStack(t, "embedded")
	ctx := context.Background()
	pub := s.client(s.key("dev", auth.RolePublisher))
	if _, err := push(t, pub, "dev", "team/agent@1.2.0", "agent-config", map[string][]byte{"agent.yaml": []byte("model: x\n"), "prompts/system.txt": []byte("be brief")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pub.AddEvidence(ctx, "dev", "team/agent", "1.2.0", "metrics", []byte(`{"auc":0.93}`)); err != nil {
		t.Fatal(err)
	}
	promoter := s.client(s.key("staging", auth.RolePromoter))
	if _, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "team/agent", Version: "1.2.0"}); err != nil {
		t.Fatal(err)
	}
	// A second release, and a rollback to the first: its attestation.
	if _, err := push(t, pub, "dev", "team/agent@1.2.1", "agent-config", map[string][]byte{"agent.yaml": []byte("model: y\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "team/agent", Version: "1.2.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "team/agent", Reason: "layout"}); err != nil {
		t.Fatal(err)
	}

	// An image pushed over the OCI API whose layer (over 1 MiB) went up in
	// chunks, kept where they lie, and an upload still open.
	ociPub := basic(s.key("dev", auth.RolePublisher))
	layer := randomBytes(t, 3<<19)
	loc := ociOpen(t, s, s.url+"/v2/dev/team/image", ociPub)
	if resp, data := ociSend(t, http.MethodPatch, s.url+loc, ociPub, layer); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH = %d %s", resp.StatusCode, data)
	} else if resp, data := ociSend(t, http.MethodPut, s.url+withQuery(resp.Header.Get("Location"), "digest", registry.DigestOf(layer).String()), ociPub, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT = %d %s", resp.StatusCode, data)
	}
	ociPushImage(t, s, ociPub, "team/image", "1.0.0", layer)
	loc = ociOpen(t, s, s.url+"/v2/dev/team/image", ociPub)
	if resp, data := ociSend(t, http.MethodPatch, s.url+loc, ociPub, []byte("half an upload")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH = %d %s", resp.StatusCode, data)
	}

	patterns := layoutPatterns(t)
	seen := map[string]int{}
	for _, env := range []string{"dev", "staging"} {
		root := s.cfg.BlobDir(env)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			key := filepath.ToSlash(strings.TrimPrefix(path, root+string(filepath.Separator)))
			if strings.HasPrefix(key, ".") {
				return nil // the filesystem driver's own bookkeeping (.tmp/)
			}
			for drawn, re := range patterns {
				if re.MatchString(key) {
					seen[drawn]++
					return nil
				}
			}
			t.Errorf("%s wrote %q, which registry/layout.go does not draw", env, key)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for drawn := range patterns {
		if seen[drawn] == 0 {
			t.Errorf("no key of the drawn form %q was written", drawn)
		}
	}
}

// ociPushImage publishes name@version over the OCI API: a manifest with
// the empty config and layer, stored already, as its one file model.bin.
func ociPushImage(t *testing.T, s *stack, authorization, name, version string, layer []byte) {
	t.Helper()
	repo := s.url + "/v2/dev/" + name
	empty := []byte("{}")
	if resp, data := ociSend(t, http.MethodPost, repo+"/blobs/uploads/?digest="+registry.DigestOf(empty).String(), authorization, empty); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST config = %d %s", resp.StatusCode, data)
	}
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + registry.DigestOf(empty).String() + `","size":2},` +
		`"layers":[{"mediaType":"application/octet-stream","digest":"` + registry.DigestOf(layer).String() + `","size":` + itoa(int64(len(layer))) +
		`,"annotations":{"org.opencontainers.image.title":"model.bin"}}]}`
	if resp, data := ociSend(t, http.MethodPut, repo+"/manifests/"+version, authorization, []byte(manifest), "Content-Type: application/vnd.oci.image.manifest.v1+json"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest = %d %s", resp.StatusCode, data)
	}
}
