package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/httpapi"
	"github.com/stagegate/stagegate/registry"
)

func writeTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func push(t *testing.T, cl *client.Client, env, ref, kind string, files map[string][]byte) (client.PublishResponse, error) {
	t.Helper()
	name, version, _ := strings.Cut(ref, "@")
	local, err := client.CollectFiles([]string{writeTree(t, files)})
	if err != nil {
		t.Fatal(err)
	}
	return cl.Push(context.Background(), env, name, version, local, client.PushOptions{Kind: kind})
}

func wantAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want API error %d %s, got %v", status, code, err)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("want %d %s, got %d %s (%s)", status, code, ae.Status, ae.Code, ae.Message)
	}
}

func TestPublishAndRead(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		pub := s.client(s.key("dev", auth.RolePublisher))
		model := map[string][]byte{
			"config.json":                    []byte(`{"layers": 2}`),
			"shards/model-00001.safetensors": randomBytes(t, 3<<20),
			"shards/model-00002.safetensors": randomBytes(t, 1<<20+7),
			"tokenizer/vocab.txt":            []byte("a\nb\n"),
		}

		res, err := push(t, pub, "dev", "team/fraud-detector@v1.2.0", "model", model)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if !res.Created || res.Version.Version != "1.2.0" || res.Version.OriginalVersion != "v1.2.0" || len(res.Version.Files) != 4 {
			t.Fatalf("unexpected publish result: %+v", res)
		}

		again, err := push(t, pub, "dev", "team/fraud-detector@1.2.0", "model", model)
		if err != nil {
			t.Fatalf("idempotent re-publish: %v", err)
		}
		if again.Created || again.Version.ManifestDigest != res.Version.ManifestDigest {
			t.Fatalf("re-publish of identical content: created=%v digest %s, want false and %s", again.Created, again.Version.ManifestDigest, res.Version.ManifestDigest)
		}

		changed := map[string][]byte{"config.json": []byte(`{"layers": 3}`)}
		_, err = push(t, pub, "dev", "team/fraud-detector@1.2.0", "model", changed)
		wantAPIError(t, err, http.StatusConflict, registry.CodeVersionExists.Name)

		// Download round trip: every byte and digest survives.
		out := t.TempDir()
		rec, err := pub.Pull(ctx, "dev", "team/fraud-detector", "1.2.0", out)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		for p, want := range model {
			got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(p)))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("pulled %s differs (err %v)", p, err)
			}
		}
		if rec.ManifestDigest != res.Version.ManifestDigest {
			t.Fatalf("pulled manifest %s, published %s", rec.ManifestDigest, res.Version.ManifestDigest)
		}

		// The manifest is an OCI image manifest whose digest is the identity.
		raw, err := pub.Manifest(ctx, "dev", "team/fraud-detector", "1.2.0")
		if err != nil {
			t.Fatal(err)
		}
		if registry.DigestOf(raw) != res.Version.ManifestDigest {
			t.Fatalf("manifest bytes hash to %s, want %s", registry.DigestOf(raw), res.Version.ManifestDigest)
		}
		m, files, err := registry.ParseManifest(raw)
		if err != nil {
			t.Fatalf("stored manifest does not parse: %v", err)
		}
		if m.ArtifactType != "application/vnd.stagegate.model.v1" || len(files) != 4 {
			t.Fatalf("manifest artifactType %q with %d layers", m.ArtifactType, len(files))
		}

		// Versions sort by semver, and constraints resolve to the highest match.
		for _, v := range []string{"1.10.0", "1.3.0", "2.0.0-rc.1"} {
			if _, err := push(t, pub, "dev", "team/fraud-detector@"+v, "model", map[string][]byte{"m.bin": []byte(v)}); err != nil {
				t.Fatalf("publish %s: %v", v, err)
			}
		}
		versions, err := pub.ListVersions(ctx, "dev", "team/fraud-detector")
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, v := range versions {
			order = append(order, v.Version)
		}
		if got, want := strings.Join(order, ","), "2.0.0-rc.1,1.10.0,1.3.0,1.2.0"; got != want {
			t.Fatalf("versions in order %s, want %s", got, want)
		}
		for constraint, want := range map[string]string{"^1.2": "1.10.0", "~1.2": "1.2.0", ">=2.0.0-0": "2.0.0-rc.1"} {
			got, err := pub.Resolve(ctx, "dev", "team/fraud-detector", constraint)
			if err != nil || got.Version != want {
				t.Fatalf("resolve %q = %q, %v; want %s", constraint, got.Version, err, want)
			}
		}
		_, err = pub.Resolve(ctx, "dev", "team/fraud-detector", "^3")
		wantAPIError(t, err, http.StatusNotFound, registry.CodeNoMatch.Name)

		arts, err := pub.ListArtifacts(ctx, "dev")
		if err != nil || len(arts) != 1 || arts[0].Name != "team/fraud-detector" || arts[0].VersionCount != 4 {
			t.Fatalf("artifacts = %+v, %v", arts, err)
		}

		// The same name may not change kind.
		_, err = push(t, pub, "dev", "team/fraud-detector@9.0.0", "schema", map[string][]byte{"s.json": []byte("{}")})
		wantAPIError(t, err, http.StatusConflict, registry.CodeKindMismatch.Name)

		// Every mutation is in the audit trail.
		events, err := pub.Audit(ctx, "dev", url.Values{"action": {"artifact.publish"}})
		if err != nil {
			t.Fatal(err)
		}
		outcomes := map[string]int{}
		for _, e := range events {
			outcomes[string(e.Outcome)+"/"+e.ErrorCode]++
			if e.Actor != "dev-publisher" || e.RequestID == "" || e.Environment != "dev" {
				t.Fatalf("audit event lacks actor, request id or environment: %+v", e)
			}
		}
		if outcomes["success/"] != 5 || outcomes["denied/version_exists"] != 1 || outcomes["denied/kind_mismatch"] != 1 {
			t.Fatalf("publish audit outcomes = %v", outcomes)
		}

		// GET /v1/audit answers for the credential's own environment.
		req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/audit?action=artifact.publish&outcome=denied", nil)
		req.Header.Set("Authorization", "Bearer "+s.key("dev", auth.RoleReader))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.Count(string(body), `"outcome":"denied"`) != 2 {
			t.Fatalf("GET /v1/audit = %d %s", resp.StatusCode, body)
		}
	})
}

// envRoute is a concrete request for one route of an environment (":env"
// stays in path).
type envRoute struct{ method, path, body string }

// envRoutes expands every route of the router that names an environment into
// concrete requests. A wildcard route dispatches several operations, each
// listed here; a route the router has and this table lacks fails the test, so
// a route added later cannot escape the separation tests.
func envRoutes(t *testing.T, s *stack, dgst string) []envRoute {
	t.Helper()
	art := "/v1/environments/:env/artifacts"
	examples := map[string][]envRoute{
		"GET " + art: {{"GET", art, ""}},
		"GET " + art + "/*rest": {
			{"GET", art + "/", ""},
			{"GET", art + "/agent/-/versions", ""},
			{"GET", art + "/agent/-/versions/1.0.0", ""},
			{"GET", art + "/agent/-/versions/1.0.0/manifest", ""},
			{"GET", art + "/agent/-/versions/1.0.0/files/agent.yaml", ""},
			{"GET", art + "/agent/-/resolve?constraint=%5E1", ""},
			{"GET", art + "/agent/-/releases", ""},
			{"GET", art + "/agent/-/versions/1.0.0/evidence", ""},
			{"GET", art + "/agent/-/versions/1.0.0/evidence/metrics", ""},
			{"GET", art + "/agent/-/versions/1.0.0/attestation", ""},
		},
		"HEAD " + art + "/*rest": {{"HEAD", art + "/agent/-/versions/1.0.0/files/agent.yaml", ""}},
		"PUT " + art + "/*rest": {
			{"PUT", art + "/agent/-/versions/1.0.1", `{"kind":"agent-config","files":[]}`},
			{"PUT", art + "/agent/-/versions/1.0.0/evidence/metrics", `{"auc":0.9}`},
		},
		"POST " + art + "/*rest":                   {{"POST", art + "/agent/-/versions/1.0.0/approvals", `{}`}},
		"POST /v1/environments/:env/promotions":    {{"POST", "/v1/environments/:env/promotions", `{"name":"agent","version":"1.0.0","dryRun":true}`}},
		"GET /v1/environments/:env/gate-runs/:id":  {{"GET", "/v1/environments/:env/gate-runs/gr_0", ""}},
		"HEAD /v1/environments/:env/blobs/:digest": {{"HEAD", "/v1/environments/:env/blobs/" + dgst, ""}},
		"PUT /v1/environments/:env/blobs/:digest":  {{"PUT", "/v1/environments/:env/blobs/" + dgst, "model: x\n"}},
		"GET /v1/environments/:env/audit":          {{"GET", "/v1/environments/:env/audit", ""}},
		"GET /v1/environments/:env/keys":           {{"GET", "/v1/environments/:env/keys", ""}},
		"POST /v1/environments/:env/keys":          {{"POST", "/v1/environments/:env/keys", `{"name":"x","role":"admin"}`}},
		"DELETE /v1/environments/:env/keys/:id":    {{"DELETE", "/v1/environments/:env/keys/key_0000", ""}},
	}
	examples["GET /v1/environments/:env/audit/export"] = []envRoute{{"GET", "/v1/environments/:env/audit/export?since=2026-01-01T00:00:00Z", ""}}
	examples["GET /v1/environments/:env/audit/checkpoint"] = []envRoute{{"GET", "/v1/environments/:env/audit/checkpoint", ""}}
	examples["POST /v1/environments/:env/rollbacks"] = []envRoute{{"POST", "/v1/environments/:env/rollbacks", `{"name":"agent","reason":"probe","dryRun":true}`}}
	examples["GET /v1/environments/:env/releases"] = []envRoute{{"GET", "/v1/environments/:env/releases?at=2026-01-01T00:00:00Z", ""}}
	// Public keys are public: the one route of an environment that takes
	// no credential.
	public := map[string]bool{"GET /v1/environments/:env/public-key": true}
	var out []envRoute
	for _, r := range httpapi.RoutesOf(s.srv.Handler()) {
		id := r.Method + " " + r.Path
		if !strings.Contains(r.Path, ":env") || public[id] || ownAuthRoutes[id] {
			continue // ownAuthRoutes refuse API keys: TestRouteAuthorisation covers them
		}
		ex, ok := examples[id]
		if !ok {
			t.Errorf("route %s has no example request in envRoutes: add one", id)
		}
		out = append(out, ex...)
	}
	if len(out) == 0 {
		t.Fatal("the router lists no environment routes")
	}
	return out
}

// TestEnvironmentSeparation: a credential of one environment is refused on
// every route of another, and each refusal is audited in the target.
func TestEnvironmentSeparation(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		devAdmin := s.key("dev", auth.RoleAdmin)
		if _, err := push(t, s.client(devAdmin), "dev", "agent@1.0.0", "agent-config", map[string][]byte{"agent.yaml": []byte("model: x\n")}); err != nil {
			t.Fatal(err)
		}
		routes := envRoutes(t, s, registry.DigestOf([]byte("model: x\n")).String())
		for _, env := range []string{"staging", "prod"} {
			for _, r := range routes {
				req, _ := http.NewRequest(r.method, s.url+strings.ReplaceAll(r.path, ":env", env), strings.NewReader(r.body))
				req.Header.Set("Authorization", "Bearer "+devAdmin)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("dev admin key: %s %s in %s = %d, want 403", r.method, r.path, env, resp.StatusCode)
				}
				if r.method != "HEAD" && !strings.Contains(string(body), `"wrong_environment"`) {
					t.Errorf("%s %s in %s: body %s lacks wrong_environment", r.method, r.path, env, body)
				}
			}
		}
		// No key, or a bad one: 401 on every route.
		for _, token := range []string{"", "sgk_not-a-real-key"} {
			_, err := s.client(token).ListArtifacts(ctx, "dev")
			wantAPIError(t, err, http.StatusUnauthorized, registry.CodeUnauthenticated.Name)
		}

		// prod's audit trail holds the attempts made against it.
		events, err := s.client(s.key("prod", auth.RoleReader)).Audit(ctx, "prod", url.Values{"outcome": {"denied"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != len(routes) {
			t.Fatalf("prod audit has %d denied events, want %d", len(events), len(routes))
		}
		for _, e := range events {
			if e.ErrorCode != registry.CodeWrongEnvironment.Name || e.Details["credentialEnvironment"] != "dev" || e.Actor != "dev-admin" {
				t.Fatalf("unexpected audit event %+v", e)
			}
		}
	})
}

func TestRolesAndKeyLifecycle(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		admin := s.client(s.key("dev", auth.RoleAdmin))
		k, token, err := admin.CreateKey(ctx, "dev", api.CreateKeyRequest{Name: "reader-bot", Role: "reader"})
		if err != nil || token == "" || k.Environment != "dev" {
			t.Fatalf("create key over API: %+v %v", k, err)
		}
		reader := s.client(token)
		if _, err := reader.ListArtifacts(ctx, "dev"); err != nil {
			t.Fatalf("reader cannot read: %v", err)
		}
		_, err = push(t, reader, "dev", "x@1.0.0", "generic", map[string][]byte{"a": []byte("a")})
		wantAPIError(t, err, http.StatusForbidden, registry.CodeForbidden.Name)
		_, _, err = reader.CreateKey(ctx, "dev", api.CreateKeyRequest{Name: "sneaky", Role: "admin", Owner: "mallory@example.test"})
		wantAPIError(t, err, http.StatusForbidden, registry.CodeForbidden.Name)

		keys, err := admin.ListKeys(ctx, "dev")
		if err != nil || len(keys) != 2 {
			t.Fatalf("list keys = %d, %v", len(keys), err)
		}
		if err := admin.RevokeKey(ctx, "dev", k.ID); err != nil {
			t.Fatal(err)
		}
		_, err = reader.ListArtifacts(ctx, "dev")
		wantAPIError(t, err, http.StatusUnauthorized, registry.CodeUnauthenticated.Name)
		err = admin.RevokeKey(ctx, "dev", "key_doesnotexist")
		wantAPIError(t, err, http.StatusNotFound, "not_found")
	})
}

func TestPublishOnlyIntoFirstEnvironment(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		staging := s.client(s.key("staging", auth.RoleAdmin))
		_, err := push(t, staging, "staging", "agent@1.0.0", "agent-config", map[string][]byte{"a.yaml": []byte("a: 1")})
		wantAPIError(t, err, http.StatusForbidden, registry.CodePublishNotFirst.Name)
		_, err = staging.Publish(context.Background(), "staging", "agent", "1.0.0", client.PublishRequest{Kind: "agent-config",
			Files: []registry.File{{Path: "a.yaml", Digest: registry.DigestOf([]byte("a: 1")), Size: 4}}})
		wantAPIError(t, err, http.StatusForbidden, registry.CodePublishNotFirst.Name)
	})
}

// TestInterruptedUploadInvisible cuts an upload halfway and sends a
// mismatching one: neither leaves a blob, and no version can point at them.
func TestInterruptedUploadInvisible(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		token := s.key("dev", auth.RolePublisher)
		pub := s.client(token)
		data := randomBytes(t, 8<<20)
		dgst := registry.DigestOf(data)

		u, _ := url.Parse(s.url)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PUT /v1/environments/dev/blobs/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", dgst, u.Host, token, len(data))
		if _, err := conn.Write(data[:len(data)/2]); err != nil {
			t.Fatal(err)
		}
		conn.Close()

		// The server audits the failed upload once it has given up on it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			events, err := pub.Audit(ctx, "dev", url.Values{"action": {"blob.upload"}, "target": {dgst.String()}})
			if err != nil {
				t.Fatal(err)
			}
			if len(events) > 0 {
				if events[0].Outcome == "success" {
					t.Fatalf("interrupted upload recorded as success")
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the interrupted upload was never audited")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ok, err := pub.BlobExists(ctx, "dev", dgst); err != nil || ok {
			t.Fatalf("blob of an interrupted upload is visible: %v %v", ok, err)
		}

		// Bytes that do not match the digest are refused and not stored.
		_, err = pub.UploadBlob(ctx, "dev", dgst, bytes.NewReader(data[:len(data)-1]), int64(len(data)-1))
		wantAPIError(t, err, http.StatusBadRequest, registry.CodeDigestMismatch.Name)
		if ok, _ := pub.BlobExists(ctx, "dev", dgst); ok {
			t.Fatal("mismatching upload left a blob")
		}

		_, err = pub.Publish(ctx, "dev", "big-model", "1.0.0", client.PublishRequest{Kind: "model",
			Files: []registry.File{{Path: "w.bin", Digest: dgst, Size: int64(len(data))}}})
		wantAPIError(t, err, http.StatusBadRequest, registry.CodeBlobNotFound.Name)
		_, err = pub.GetVersion(ctx, "dev", "big-model", "1.0.0")
		wantAPIError(t, err, http.StatusNotFound, registry.CodeVersionNotFound.Name)

		// A complete upload afterwards works.
		if _, err := pub.UploadBlob(ctx, "dev", dgst, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("complete upload after an interrupted one: %v", err)
		}
	})
}

// TestConcurrentPublishOneWinner: 16 publishes of one name@version with
// different content; exactly one wins and the stored bytes are its.
func TestConcurrentPublishOneWinner(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		pub := s.client(s.key("dev", auth.RolePublisher))
		const n = 16
		contents := make([][]byte, n)
		reqs := make([]client.PublishRequest, n)
		for i := range contents {
			contents[i] = []byte(fmt.Sprintf("weights of candidate %d", i))
			if _, err := pub.UploadBlob(ctx, "dev", registry.DigestOf(contents[i]), bytes.NewReader(contents[i]), int64(len(contents[i]))); err != nil {
				t.Fatal(err)
			}
			reqs[i] = client.PublishRequest{Kind: "model", Files: []registry.File{{Path: "w.bin", Digest: registry.DigestOf(contents[i]), Size: int64(len(contents[i]))}}}
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		results := make([]client.PublishResponse, n)
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				results[i], errs[i] = pub.Publish(ctx, "dev", "racy", "1.0.0", reqs[i])
			}(i)
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("publishes %d and %d both succeeded", winner, i)
				}
				winner = i
				continue
			}
			wantAPIError(t, err, http.StatusConflict, registry.CodeVersionExists.Name)
		}
		if winner < 0 || !results[winner].Created {
			t.Fatalf("no publish won")
		}
		rc, err := pub.OpenFile(ctx, "dev", "racy", "1.0.0", "w.bin")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, contents[winner]) {
			t.Fatalf("stored %q, winner published %q", got, contents[winner])
		}
	})
}

func TestBadInputRefused(t *testing.T) {
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			s := newStack(t, kind, func(c *config.Config) { c.Limits.MaxFileSize = 1 << 20 })
			ctx := context.Background()
			pub := s.client(s.key("dev", auth.RolePublisher))
			good := []byte("ok")
			if _, err := pub.UploadBlob(ctx, "dev", registry.DigestOf(good), bytes.NewReader(good), 2); err != nil {
				t.Fatal(err)
			}
			files := []registry.File{{Path: "ok.txt", Digest: registry.DigestOf(good), Size: 2}}
			cases := []struct {
				name, artifact, version, kind string
				files                         []registry.File
				status                        int
				code                          string
			}{
				{"dotdot name", "a/../b", "1.0.0", "generic", files, 400, registry.CodeInvalidName.Name},
				{"uppercase name", "Fraud", "1.0.0", "generic", files, 400, registry.CodeInvalidName.Name},
				{"control char name", "a\x01b", "1.0.0", "generic", files, 400, registry.CodeInvalidName.Name},
				{"over-long name", strings.Repeat("a", 201), "1.0.0", "generic", files, 400, registry.CodeInvalidName.Name},
				{"latest", "a", "latest", "generic", files, 400, registry.CodeInvalidVersion.Name},
				{"range", "a", "^1.2", "generic", files, 400, registry.CodeInvalidVersion.Name},
				{"partial version", "a", "1.2", "generic", files, 400, registry.CodeInvalidVersion.Name},
				{"unknown kind", "a", "1.0.0", "dataset", files, 400, registry.CodeInvalidKind.Name},
				{"absolute path", "a", "1.0.0", "generic", []registry.File{{Path: "/etc/passwd", Digest: registry.DigestOf(good), Size: 2}}, 400, registry.CodeInvalidPath.Name},
				{"dotdot path", "a", "1.0.0", "generic", []registry.File{{Path: "x/../../y", Digest: registry.DigestOf(good), Size: 2}}, 400, registry.CodeInvalidPath.Name},
				{"no files", "a", "1.0.0", "generic", nil, 400, registry.CodeInvalidRequest.Name},
				{"size lie", "a", "1.0.0", "generic", []registry.File{{Path: "ok.txt", Digest: registry.DigestOf(good), Size: 3}}, 400, registry.CodeBlobSizeMismatch.Name},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					_, err := pub.Publish(ctx, "dev", c.artifact, c.version, client.PublishRequest{Kind: c.kind, Files: c.files})
					wantAPIError(t, err, c.status, c.code)
				})
			}
			big := randomBytes(t, 1<<20+1)
			_, err := pub.UploadBlob(ctx, "dev", registry.DigestOf(big), bytes.NewReader(big), int64(len(big)))
			wantAPIError(t, err, http.StatusRequestEntityTooLarge, registry.CodeTooLarge.Name)
			if ok, _ := pub.BlobExists(ctx, "dev", registry.DigestOf(big)); ok {
				t.Fatal("oversized blob stored")
			}
			arts, err := pub.ListArtifacts(ctx, "dev")
			if err != nil || len(arts) != 0 {
				t.Fatalf("refused publishes left artifacts: %+v %v", arts, err)
			}
			events, err := pub.Audit(ctx, "dev", url.Values{"outcome": {"denied"}})
			if err != nil || len(events) != len(cases)+1 {
				t.Fatalf("want %d denied audit events, got %d (%v)", len(cases)+1, len(events), err)
			}
		})
	}
}
