package server_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// TestEvidenceContent: GET …/evidence/<type> returns the attached bytes
// under their recorded media type and digest, in the first environment and
// in one the version was promoted into, only to that environment's keys;
// ?digest= picks one of several documents of a type; a missing document is
// a JSON 404 evidence_not_found.
func TestEvidenceContent(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		pub := s.client(s.key("dev", auth.RolePublisher))
		if _, err := push(t, pub, "dev", "scorer@1.0.0", "generic", map[string][]byte{"a.txt": []byte("a")}); err != nil {
			t.Fatal(err)
		}
		junit := []byte(`<testsuite name="s" tests="1"><testcase name="ok"/></testsuite>`)
		oldMetrics, newMetrics := []byte(`{"auc": 0.91}`), []byte(`{"auc": 0.93}`)
		for _, doc := range []struct {
			typ  string
			data []byte
		}{{"junit", junit}, {"metrics", oldMetrics}, {"metrics", newMetrics}} {
			if _, _, err := pub.AddEvidence(ctx, "dev", "scorer", "1.0.0", doc.typ, doc.data); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.client(s.key("staging", auth.RolePromoter)).Promote(ctx, "staging",
			client.PromoteRequest{Name: "scorer", Version: "1.0.0"}); err != nil {
			t.Fatal(err)
		}
		devReader, stagingReader := s.key("dev", auth.RoleReader), s.key("staging", auth.RoleReader)
		path := func(env, rest string) string {
			return s.url + "/v1/environments/" + env + "/artifacts/scorer/-/versions/1.0.0/evidence/" + rest
		}
		for _, tt := range []struct {
			name, method, url, key string
			status                 int
			body                   []byte // want exactly these bytes (200)
			mediaType, code        string
		}{
			{"junit in dev", "GET", path("dev", "junit"), devReader, 200, junit, "application/xml", ""},
			{"newest metrics", "GET", path("dev", "metrics"), devReader, 200, newMetrics, "application/json", ""},
			{"older metrics by digest", "GET", path("dev", "metrics?digest="+registry.DigestOf(oldMetrics).String()), devReader, 200, oldMetrics, "application/json", ""},
			{"promoted with the version", "GET", path("staging", "junit"), stagingReader, 200, junit, "application/xml", ""},
			{"head", "HEAD", path("staging", "junit"), stagingReader, 200, nil, "application/xml", ""},
			{"no such type", "GET", path("dev", "provenance"), devReader, 404, nil, "", "evidence_not_found"},
			{"no such digest", "GET", path("dev", "junit?digest="+registry.DigestOf(oldMetrics).String()), devReader, 404, nil, "", "evidence_not_found"},
			{"bad digest", "GET", path("dev", "junit?digest=sha256:nope"), devReader, 400, nil, "", "invalid_digest"},
			{"no such version", "GET", s.url + "/v1/environments/dev/artifacts/scorer/-/versions/9.9.9/evidence/junit", devReader, 404, nil, "", "version_not_found"},
			{"a dev key never reads staging", "GET", path("staging", "junit"), devReader, 403, nil, "", "wrong_environment"},
			{"no key", "GET", path("dev", "junit"), "", 401, nil, "", "unauthenticated"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, body, err := rawRequest(t, tt.method, tt.url, tt.key, nil)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tt.status {
					t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.url, resp.StatusCode, body, tt.status)
				}
				if tt.code != "" {
					if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(string(body), `"code":"`+tt.code+`"`) {
						t.Errorf("refusal = %q %s, want a JSON error %s", resp.Header.Get("Content-Type"), body, tt.code)
					}
					return
				}
				if ct := resp.Header.Get("Content-Type"); ct != tt.mediaType {
					t.Errorf("Content-Type = %q, want %q", ct, tt.mediaType)
				}
				if tt.method == "HEAD" {
					if len(body) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(len(junit)) {
						t.Errorf("HEAD: %d body bytes, Content-Length %q", len(body), resp.Header.Get("Content-Length"))
					}
					return
				}
				if string(body) != string(tt.body) {
					t.Errorf("body = %q, want %q", body, tt.body)
				}
				if d := resp.Header.Get("X-Stagegate-Digest"); d != registry.DigestOf(tt.body).String() {
					t.Errorf("X-Stagegate-Digest = %q", d)
				}
			})
		}
	})
}

// TestCorruptEvidenceNotServed: a stored evidence document that no longer
// matches its recorded digest is a JSON 500, never its bytes.
func TestCorruptEvidenceNotServed(t *testing.T) {
	s := newStack(t, "embedded", nil)
	ctx := context.Background()
	pub := s.client(s.key("dev", auth.RolePublisher))
	if _, err := push(t, pub, "dev", "scorer@1.0.0", "generic", map[string][]byte{"a.txt": []byte("a")}); err != nil {
		t.Fatal(err)
	}
	junit := []byte(`<testsuite name="s" tests="1"><testcase name="ok"/></testsuite>`)
	if _, _, err := pub.AddEvidence(ctx, "dev", "scorer", "1.0.0", "junit", junit); err != nil {
		t.Fatal(err)
	}
	flipByte(t, s, "dev", registry.DigestOf(junit).String())
	resp, body, err := rawRequest(t, "GET", s.url+"/v1/environments/dev/artifacts/scorer/-/versions/1.0.0/evidence/junit",
		s.key("dev", auth.RoleReader), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), `"code":"internal"`) ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || strings.Contains(string(body), "testsuite") {
		t.Errorf("corrupt evidence = %d %q %s, want a JSON 500 without the document", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
