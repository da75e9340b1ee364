package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/httpapi"
	"github.com/stagegate/stagegate/oci"
	"github.com/stagegate/stagegate/registry"
)

// isOCIRoute tells the /v1 route tests which routes are the OCI API's:
// TestOCIRouteAuthorisation probes those, and the OpenAPI document (which
// describes /v1) leaves them to the README.
func isOCIRoute(path string) bool { return strings.HasPrefix(path, "/v2/") }

// ociRelease is what ociStack published and promoted.
type ociRelease struct {
	name, version string            // team/agent, 1.2.0 (published as "v1.2.0")
	files         map[string][]byte // path → content
	manifest      []byte            // the stored manifest bytes
	digest        string            // its digest
}

// ociStack starts a stack whose staging and prod admit a promotion on
// order and integrity alone, publishes team/agent at two versions and
// promotes both into staging and the first into prod.
func ociStack(t *testing.T, kind string) (*stack, ociRelease) {
	t.Helper()
	dir := t.TempDir()
	policies := map[string]string{}
	for _, env := range []string{"staging", "prod"} {
		policies[env] = filepath.Join(dir, env+".yaml")
		if err := os.WriteFile(policies[env], []byte("environment: "+env+"\nchecks:\n  - name: promotion-order\n  - name: digest-integrity\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := newStack(t, kind, func(c *config.Config) {
		for i := range c.Environments {
			if p, ok := policies[c.Environments[i].Name]; ok {
				c.Environments[i].Policy = p
			}
		}
	})
	ctx := context.Background()
	rel := ociRelease{name: "team/agent", version: "1.2.0", files: map[string][]byte{
		"agent.yaml":         []byte("model: x\n"),
		"prompts/system.txt": randomBytes(t, 1<<20+4099), // more than one copy chunk
	}}
	pub := s.client(s.key("dev", auth.RolePublisher))
	if _, err := push(t, pub, "dev", rel.name+"@v"+rel.version, "agent-config", rel.files); err != nil {
		t.Fatal(err)
	}
	if _, err := push(t, pub, "dev", rel.name+"@1.10.0", "agent-config", map[string][]byte{"agent.yaml": []byte("model: y\n")}); err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"staging", "prod"} {
		promoter := s.client(s.key(env, auth.RolePromoter))
		versions := []string{rel.version, "1.10.0"}
		if env == "prod" {
			versions = versions[:1]
		}
		for _, v := range versions {
			if _, err := promoter.Promote(ctx, env, client.PromoteRequest{Name: rel.name, Version: v}); err != nil {
				t.Fatalf("promote %s@%s into %s: %v", rel.name, v, env, err)
			}
		}
	}
	var err error
	if rel.manifest, err = s.client(s.key("prod", auth.RoleReader)).Manifest(ctx, "prod", rel.name, rel.version); err != nil {
		t.Fatal(err)
	}
	rel.digest = registry.DigestOf(rel.manifest).String()
	return s, rel
}

// ociRequest sends one request with an optional Authorization header and
// extra headers ("Name: value").
func ociRequest(t *testing.T, method, u, authorization string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return ociSend(t, method, u, authorization, nil, headers...)
}

// ociSend is ociRequest with a body.
func ociSend(t *testing.T, method, u, authorization string, body []byte, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return resp, data
}

func basic(token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:"+token))
}

// ociErrorCode checks the OCI error envelope and returns its first code.
func ociErrorCode(t *testing.T, what string, resp *http.Response, data []byte) string {
	t.Helper()
	var body oci.Body
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct != "application/json" || json.Unmarshal(data, &body) != nil || len(body.Errors) != 1 || body.Errors[0].Code == "" || body.Errors[0].Message == "" {
		t.Errorf("%s = %d %q %.300s, want the OCI error envelope", what, resp.StatusCode, ct, data)
		return ""
	}
	return body.Errors[0].Code
}

// TestOCIPull reads a promoted release through /v2/ with plain HTTP, on
// every stack: manifests by tag and digest, blobs whole and in ranges, tag
// lists and the catalog, and the errors of each.
func TestOCIPull(t *testing.T) {
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testOCIPull(t, kind)
		})
	}
}

func testOCIPull(t *testing.T, kind string) {
	{
		s, rel := ociStack(t, kind)
		reader := s.key("prod", auth.RoleReader)
		repo := s.url + "/v2/prod/" + rel.name
		manifestType := "application/vnd.oci.image.manifest.v1+json"

		t.Run("version check", func(t *testing.T) {
			resp, data := ociRequest(t, http.MethodGet, s.url+"/v2/", "")
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="stagegate"` ||
				ociErrorCode(t, "GET /v2/ anonymous", resp, data) != "UNAUTHORIZED" {
				t.Errorf("GET /v2/ without a credential = %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), data)
			}
			for name, authz := range map[string]string{"bearer": "Bearer " + reader, "basic": basic(reader)} {
				resp, data := ociRequest(t, http.MethodGet, s.url+"/v2/", authz)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
					t.Errorf("GET /v2/ with %s = %d %s", name, resp.StatusCode, data)
				}
			}
			resp, data = ociRequest(t, http.MethodGet, s.url+"/v2/", basic("sgk_not-a-key"))
			if resp.StatusCode != http.StatusUnauthorized || ociErrorCode(t, "GET /v2/ bad key", resp, data) != "UNAUTHORIZED" {
				t.Errorf("GET /v2/ with a bad key = %d %s", resp.StatusCode, data)
			}
		})

		t.Run("manifests", func(t *testing.T) {
			for _, ref := range []string{rel.version, "v" + rel.version, rel.digest} {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					resp, data := ociRequest(t, method, repo+"/manifests/"+ref, basic(reader), "Accept: "+manifestType)
					want := rel.manifest
					if method == http.MethodHead {
						want = nil
					}
					if resp.StatusCode != http.StatusOK || !bytes.Equal(data, want) ||
						resp.Header.Get("Docker-Content-Digest") != rel.digest || resp.Header.Get("Content-Type") != manifestType ||
						resp.ContentLength != int64(len(rel.manifest)) {
						t.Errorf("%s manifest %s = %d %q %q length %d, want the stored bytes", method, ref, resp.StatusCode,
							resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type"), resp.ContentLength)
					}
				}
			}
			for _, c := range []struct {
				path   string
				status int
				code   string
			}{
				{repo + "/manifests/9.9.9", http.StatusNotFound, "MANIFEST_UNKNOWN"},
				{repo + "/manifests/1.10.0", http.StatusNotFound, "MANIFEST_UNKNOWN"}, // in staging, not in prod
				{repo + "/manifests/latest", http.StatusNotFound, "MANIFEST_UNKNOWN"},
				{repo + "/manifests/" + registry.DigestOf([]byte("x")).String(), http.StatusNotFound, "MANIFEST_UNKNOWN"},
				{repo + "/manifests/sha512:" + strings.Repeat("ab", 64), http.StatusNotFound, "MANIFEST_UNKNOWN"},
				{repo + "/manifests/sha256:baddigeststring", http.StatusBadRequest, "DIGEST_INVALID"},
				{repo + "/manifests/bad%20tag", http.StatusBadRequest, "TAG_INVALID"},
				{s.url + "/v2/prod/nobody/manifests/1.0.0", http.StatusNotFound, "NAME_UNKNOWN"},
				{s.url + "/v2/prod/Bad_Name/manifests/1.0.0", http.StatusBadRequest, "NAME_INVALID"},
				{s.url + "/v2/prod/manifests/1.0.0", http.StatusBadRequest, "NAME_INVALID"}, // a repository is <environment>/<name>
			} {
				resp, data := ociRequest(t, http.MethodGet, c.path, basic(reader))
				if code := ociErrorCode(t, c.path, resp, data); resp.StatusCode != c.status || code != c.code {
					t.Errorf("GET %s = %d %s, want %d %s", c.path, resp.StatusCode, code, c.status, c.code)
				}
			}
		})

		t.Run("blobs", func(t *testing.T) {
			content := rel.files["prompts/system.txt"]
			blob := repo + "/blobs/" + registry.DigestOf(content).String()
			resp, data := ociRequest(t, http.MethodGet, blob, basic(reader))
			if resp.StatusCode != http.StatusOK || !bytes.Equal(data, content) || resp.Header.Get("Docker-Content-Digest") != registry.DigestOf(content).String() {
				t.Errorf("GET blob = %d, %d bytes", resp.StatusCode, len(data))
			}
			resp, data = ociRequest(t, http.MethodHead, blob, basic(reader))
			if resp.StatusCode != http.StatusOK || len(data) != 0 || resp.ContentLength != int64(len(content)) {
				t.Errorf("HEAD blob = %d length %d", resp.StatusCode, resp.ContentLength)
			}
			size := int64(len(content))
			for _, c := range []struct {
				rng        string
				from, to   int64 // the bytes expected, [from, to)
				contentRng string
			}{
				{"bytes=0-9", 0, 10, "bytes 0-9/"},
				{"bytes=1048570-1048600", 1048570, 1048601, "bytes 1048570-1048600/"},
				{"bytes=1048000-", 1048000, size, "bytes 1048000-" + itoa(size-1) + "/"},
				{"bytes=-5", size - 5, size, "bytes " + itoa(size-5) + "-" + itoa(size-1) + "/"},
				{"bytes=5-5", 5, 6, "bytes 5-5/"},
			} {
				resp, data := ociRequest(t, http.MethodGet, blob, basic(reader), "Range: "+c.rng)
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(data, content[c.from:c.to]) ||
					resp.Header.Get("Content-Range") != c.contentRng+itoa(size) {
					t.Errorf("GET blob %s = %d %q, %d bytes", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(data))
				}
			}
			// Blobs are the environment's: any valid name serves them.
			resp, data = ociRequest(t, http.MethodGet, s.url+"/v2/prod/another/blobs/"+registry.DigestOf(content).String(), basic(reader))
			if resp.StatusCode != http.StatusOK || !bytes.Equal(data, content) {
				t.Errorf("GET blob under another name = %d, %d bytes", resp.StatusCode, len(data))
			}
			resp, _ = ociRequest(t, http.MethodGet, blob, basic(reader), "Range: bytes="+itoa(size)+"-")
			if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != "bytes */"+itoa(size) {
				t.Errorf("GET blob past its end = %d %q, want 416", resp.StatusCode, resp.Header.Get("Content-Range"))
			}
			for _, c := range []struct{ path, code string }{
				{repo + "/blobs/" + registry.DigestOf([]byte("nothing")).String(), "BLOB_UNKNOWN"},
				{repo + "/blobs/sha512:" + strings.Repeat("ab", 64), "BLOB_UNKNOWN"},
			} {
				resp, data := ociRequest(t, http.MethodGet, c.path, basic(reader))
				if code := ociErrorCode(t, c.path, resp, data); resp.StatusCode != http.StatusNotFound || code != c.code {
					t.Errorf("GET %s = %d %s, want 404 %s", c.path, resp.StatusCode, code, c.code)
				}
			}
		})

		t.Run("tags and catalog", func(t *testing.T) {
			staging := s.key("staging", auth.RoleReader)
			type tagList struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			get := func(u string, token string) (tagList, http.Header) {
				resp, data := ociRequest(t, http.MethodGet, u, basic(token))
				var tl tagList
				if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &tl) != nil {
					t.Fatalf("GET %s = %d %s", u, resp.StatusCode, data)
				}
				return tl, resp.Header
			}
			tl, _ := get(s.url+"/v2/staging/team/agent/tags/list", staging)
			if tl.Name != "staging/team/agent" || !slices.Equal(tl.Tags, []string{"1.10.0", "1.2.0"}) {
				t.Errorf("staging tags = %+v", tl)
			}
			tl, h := get(s.url+"/v2/staging/team/agent/tags/list?n=1", staging)
			if !slices.Equal(tl.Tags, []string{"1.10.0"}) || h.Get("Link") != `</v2/staging/team/agent/tags/list?last=1.10.0&n=1>; rel="next"` {
				t.Errorf("first page = %+v, Link %q", tl, h.Get("Link"))
			}
			tl, h = get(s.url+"/v2/staging/team/agent/tags/list?n=1&last=1.10.0", staging)
			if !slices.Equal(tl.Tags, []string{"1.2.0"}) || h.Get("Link") != "" {
				t.Errorf("second page = %+v, Link %q", tl, h.Get("Link"))
			}
			tl, _ = get(repo+"/tags/list", reader)
			if !slices.Equal(tl.Tags, []string{"1.2.0"}) {
				t.Errorf("prod tags = %+v", tl)
			}
			resp, data := ociRequest(t, http.MethodGet, repo+"/tags/list?n=-1", basic(reader))
			if code := ociErrorCode(t, "n=-1", resp, data); resp.StatusCode != http.StatusBadRequest || code != "PAGINATION_NUMBER_INVALID" {
				t.Errorf("tags n=-1 = %d %s", resp.StatusCode, code)
			}
			resp, data = ociRequest(t, http.MethodGet, s.url+"/v2/_catalog", basic(reader))
			if resp.StatusCode != http.StatusOK || string(data) != `{"repositories":["prod/team/agent"]}` {
				t.Errorf("catalog = %d %s", resp.StatusCode, data)
			}
		})

		t.Run("referrers", func(t *testing.T) {
			// A promoted release: its environment signature and gate
			// attestation (TestOCICosignVerify checks them with cosign).
			resp, data := ociRequest(t, http.MethodGet, repo+"/referrers/"+rel.digest, basic(reader))
			var index struct {
				Manifests []struct {
					ArtifactType string `json:"artifactType"`
				} `json:"manifests"`
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" ||
				json.Unmarshal(data, &index) != nil || len(index.Manifests) != 2 ||
				index.Manifests[0].ArtifactType != oci.SignatureArtifactType || index.Manifests[1].ArtifactType != oci.AttestationArtifactType {
				t.Errorf("referrers = %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
			}
			// A digest that is no version's manifest has none.
			resp, data = ociRequest(t, http.MethodGet, repo+"/referrers/"+registry.DigestOf([]byte("nothing")).String(), basic(reader))
			if resp.StatusCode != http.StatusOK || string(data) != `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}` {
				t.Errorf("referrers of an unknown digest = %d %s", resp.StatusCode, data)
			}
		})

		t.Run("corrupt blobs", func(t *testing.T) {
			if kind != "embedded" {
				t.Skip("flipByte corrupts the embedded store's files")
			}
			// A small blob fails verification before its first byte.
			small := registry.DigestOf(rel.files["agent.yaml"]).String()
			flipByte(t, s, "prod", small)
			resp, data := ociRequest(t, http.MethodGet, repo+"/blobs/"+small, basic(reader))
			if code := ociErrorCode(t, "corrupt blob", resp, data); resp.StatusCode != http.StatusInternalServerError || code != "UNKNOWN" {
				t.Errorf("GET corrupt small blob = %d %s, want 500 UNKNOWN", resp.StatusCode, code)
			}
			// A large one is cut short, whole or in a range: no client
			// receives all the bytes it asked for.
			large := rel.files["prompts/system.txt"]
			flipByte(t, s, "prod", registry.DigestOf(large).String())
			for _, rng := range []string{"", "bytes=0-9", "bytes=1048570-1048600"} {
				req, _ := http.NewRequest(http.MethodGet, repo+"/blobs/"+registry.DigestOf(large).String(), nil)
				req.Header.Set("Authorization", basic(reader))
				if rng != "" {
					req.Header.Set("Range", rng)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				data, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode < 300 && int64(len(data)) == resp.ContentLength {
					t.Errorf("GET corrupt blob (Range %q) = %d with all %d bytes, want a cut transfer", rng, resp.StatusCode, len(data))
				}
			}
		})

		t.Run("isolation and refusals", func(t *testing.T) {
			dev := s.key("dev", auth.RoleAdmin)
			resp, data := ociRequest(t, http.MethodGet, repo+"/manifests/"+rel.version, basic(dev))
			if code := ociErrorCode(t, "dev key on prod", resp, data); resp.StatusCode != http.StatusForbidden || code != "DENIED" {
				t.Errorf("dev key on prod = %d %s, want 403 DENIED", resp.StatusCode, code)
			}
			// The refusal is in prod's audit trail, as the REST API files it.
			events, err := s.client(reader).Audit(context.Background(), "prod", url.Values{"outcome": {"denied"}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(events, func(e audit.Event) bool {
				return e.ErrorCode == registry.CodeWrongEnvironment.Name && e.Details["path"] == "/v2/prod/"+rel.name+"/manifests/"+rel.version
			}) {
				t.Errorf("prod's audit trail has no wrong_environment refusal of the dev key's read: %+v", events)
			}
			for _, method := range []string{http.MethodDelete, http.MethodPut} {
				resp, data := ociRequest(t, method, repo+"/manifests/"+rel.version, basic(s.key("prod", auth.RoleAdmin)))
				if code := ociErrorCode(t, method, resp, data); resp.StatusCode != http.StatusMethodNotAllowed || code != "UNSUPPORTED" {
					t.Errorf("%s manifest = %d %s, want 405 UNSUPPORTED", method, resp.StatusCode, code)
				}
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// ociProbes are concrete requests of every OCI route; ":env" is replaced by
// each environment in turn.
var ociProbes = []struct {
	method, path string
	perm         auth.Permission
}{
	{http.MethodGet, "/v2/", anyRole},
	{http.MethodHead, "/v2/", anyRole},
	{http.MethodGet, "/v2/_catalog", auth.PermRead},
	{http.MethodGet, "/v2/:env/agent/manifests/1.0.0", auth.PermRead},
	{http.MethodHead, "/v2/:env/agent/manifests/1.0.0", auth.PermRead},
	{http.MethodGet, "/v2/:env/agent/blobs/{digest}", auth.PermRead},
	{http.MethodHead, "/v2/:env/agent/blobs/{digest}", auth.PermRead},
	{http.MethodGet, "/v2/:env/agent/tags/list", auth.PermRead},
	{http.MethodGet, "/v2/:env/agent/referrers/{digest}", auth.PermRead},
	{http.MethodPut, "/v2/:env/agent/manifests/1.0.1", auth.PermPublish},
	{http.MethodPost, "/v2/:env/agent/blobs/uploads/", auth.PermPublish},
	{http.MethodPatch, "/v2/:env/agent/blobs/uploads/session", auth.PermPublish},
	{http.MethodDelete, "/v2/:env/agent/manifests/1.0.0", auth.PermRead},
}

// TestOCIRouteAuthorisation is TestRouteAuthorisation for the OCI API:
// every OCI route, in every environment, refuses no credential and a bad
// one with 401 and the Basic challenge, a key of another environment with
// 403 DENIED, and exactly the roles without the permission with 403 DENIED.
func TestOCIRouteAuthorisation(t *testing.T) {
	t.Parallel()
	s := newStack(t, "embedded", nil)
	envs := []string{"dev", "staging", "prod"}
	keys := map[string]map[auth.Role]string{}
	for _, env := range envs {
		keys[env] = map[auth.Role]string{}
		for _, role := range routeRoles {
			keys[env][role] = s.key(env, role)
		}
	}
	dgst := registry.DigestOf([]byte("model: x\n")).String()
	if _, err := push(t, s.client(keys["dev"][auth.RoleAdmin]), "dev", "agent@1.0.0", "agent-config", map[string][]byte{"agent.yaml": []byte("model: x\n")}); err != nil {
		t.Fatal(err)
	}

	probed := map[string]bool{}
	for _, p := range ociProbes {
		probed[p.method] = true
	}
	for _, r := range httpapi.RoutesOf(s.srv.Handler()) {
		if isOCIRoute(r.Path) && !probed[r.Method] {
			t.Errorf("OCI route %s %s has no probe in ociProbes", r.Method, r.Path)
		}
	}

	send := func(method, u, authorization string) (int, string, http.Header) {
		resp, data := ociRequest(t, method, u, authorization)
		if method == http.MethodHead || resp.StatusCode < 400 {
			return resp.StatusCode, "", resp.Header
		}
		return resp.StatusCode, ociErrorCode(t, method+" "+u, resp, data), resp.Header
	}
	for _, p := range ociProbes {
		for i, env := range envs {
			u := s.url + strings.NewReplacer(":env", env, "{digest}", dgst).Replace(p.path)
			id := p.method + " " + p.path + " in " + env
			for name, authz := range map[string]string{"no credential": "", "bad bearer": "Bearer sgk_not-a-key", "bad basic": basic("sgk_not-a-key")} {
				status, code, h := send(p.method, u, authz)
				if status != http.StatusUnauthorized || h.Get("WWW-Authenticate") != `Basic realm="stagegate"` ||
					(p.method != http.MethodHead && code != "UNAUTHORIZED") {
					t.Errorf("%s with %s = %d %s %q, want 401 UNAUTHORIZED with the Basic challenge", id, name, status, code, h.Get("WWW-Authenticate"))
				}
			}
			if strings.Contains(p.path, ":env") {
				other := envs[(i+1)%len(envs)]
				status, code, _ := send(p.method, u, basic(keys[other][auth.RoleAdmin]))
				if status != http.StatusForbidden || (p.method != http.MethodHead && code != "DENIED") {
					t.Errorf("%s with a %s admin key = %d %s, want 403 DENIED", id, other, status, code)
				}
			}
			var refused, lacking []auth.Role
			for _, role := range routeRoles {
				if p.perm != anyRole && !role.Allows(p.perm) {
					lacking = append(lacking, role)
				}
				status, code, _ := send(p.method, u, basic(keys[env][role]))
				switch {
				case status == http.StatusForbidden && (p.method == http.MethodHead || code == "DENIED"):
					refused = append(refused, role)
				case status == http.StatusUnauthorized || status == http.StatusForbidden:
					t.Errorf("%s with its own %s key = %d %s", id, role, status, code)
				}
			}
			if !slices.Equal(refused, lacking) {
				t.Errorf("%s: roles refused 403 DENIED %v, want those without %q: %v", id, refused, p.perm, lacking)
			}
		}
	}
}

// peerTool finds a registry client the test script installs (env names the
// binary), else on PATH; without it the test skips with a message.
func peerTool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: set %s or run scripts/test.sh", name, env)
	}
	return p
}

// runTool runs a peer binary with HOME and DOCKER_CONFIG in dir, so no
// credential of the machine is read or written.
func runTool(t *testing.T, dir, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "DOCKER_CONFIG="+filepath.Join(dir, ".docker"), "XDG_CONFIG_HOME="+filepath.Join(dir, ".config"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustRunTool is runTool for a run that must succeed.
func mustRunTool(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	out, err := runTool(t, dir, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

// TestOCIClients: crane and oras, unmodified, log in with an API key and
// read a release promoted into staging and prod.
func TestOCIClients(t *testing.T) {
	t.Parallel()
	crane := peerTool(t, "STAGEGATE_TEST_CRANE", "crane")
	oras := peerTool(t, "STAGEGATE_TEST_ORAS", "oras")
	s, rel := ociStack(t, "embedded")
	host := strings.TrimPrefix(s.url, "http://")

	for _, env := range []string{"staging", "prod"} {
		t.Run(env, func(t *testing.T) {
			dir := t.TempDir()
			key := s.key(env, auth.RoleReader)
			ref := host + "/" + env + "/" + rel.name + ":" + rel.version
			run := func(bin string, args ...string) string {
				t.Helper()
				return mustRunTool(t, dir, bin, args...)
			}

			// crane: the key is the password of a stored login.
			run(crane, "auth", "login", host, "-u", "ci", "-p", key)
			if out := run(crane, "manifest", "--insecure", ref); out != string(rel.manifest) {
				t.Errorf("crane manifest = %.300s, want the stored manifest", out)
			}
			if out := run(crane, "digest", "--insecure", ref); strings.TrimSpace(out) != rel.digest {
				t.Errorf("crane digest = %q, want %s", out, rel.digest)
			}
			if out := run(crane, "ls", "--insecure", host+"/"+env+"/"+rel.name); !strings.Contains(out, rel.version+"\n") {
				t.Errorf("crane ls = %q, want %s listed", out, rel.version)
			}
			layout := filepath.Join(dir, "layout")
			run(crane, "pull", "--insecure", "--format=oci", ref, layout)
			for _, content := range rel.files {
				got, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(registry.DigestOf(content).String(), "sha256:")))
				if err != nil || !bytes.Equal(got, content) {
					t.Errorf("crane pull: blob %s missing or different: %v", registry.DigestOf(content), err)
				}
			}

			// oras: the same key through its own login, files by title.
			run(oras, "login", "--plain-http", "-u", "ci", "-p", key, host)
			out := filepath.Join(dir, "oras-out")
			run(oras, "pull", "--plain-http", "-o", out, ref)
			for path, content := range rel.files {
				got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(path)))
				if err != nil || !bytes.Equal(got, content) {
					t.Errorf("oras pull: %s missing or different: %v", path, err)
				}
			}

			if env == "staging" {
				ociPushWithOras(t, s, oras, host)
			}

			// A key of another environment is refused by both.
			other := s.key("dev", auth.RoleAdmin)
			run(crane, "auth", "login", host, "-u", "ci", "-p", other)
			if out, err := runTool(t, dir, crane, "manifest", "--insecure", ref); err == nil || !strings.Contains(out, "DENIED") {
				t.Errorf("crane manifest with a dev key = %v\n%s, want DENIED", err, out)
			}
		})
	}
}

// TestOCIConformance runs the OCI distribution-spec conformance suite
// (scripts/test.sh builds it) against staging in read-only mode, with the
// content ociStack published and promoted: the pull and content-discovery
// workflows must pass. Its report goes to a temporary directory, out of git.
func TestOCIConformance(t *testing.T) {
	t.Parallel()
	bin := peerTool(t, "STAGEGATE_TEST_OCI_CONFORMANCE", "conformance")
	s, rel := ociStack(t, "embedded")
	ctx := context.Background()
	key := s.key("staging", auth.RoleReader)
	versions, err := s.client(key).ListVersions(ctx, "staging", rel.name)
	if err != nil {
		t.Fatal(err)
	}
	var tags, manifests, blobs []string
	for _, v := range versions {
		tags = append(tags, v.Version)
		manifests = append(manifests, v.ManifestDigest.String())
		for _, f := range v.Files {
			blobs = append(blobs, f.Digest.String())
		}
	}
	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"HOME="+results,
		"OCI_RESULTS_DIR="+results,
		"OCI_REGISTRY="+strings.TrimPrefix(s.url, "http://"),
		"OCI_TLS=disabled",
		"OCI_REPO1=staging/"+rel.name,
		"OCI_REPO2=staging/"+rel.name,
		"OCI_USERNAME=conformance",
		"OCI_PASSWORD="+key,
		"OCI_VERSION=1.1",
		// Read-only: stagegate takes content by publish and promotion, and
		// deletes nothing (README, "OCI distribution API").
		"OCI_API_PUSH=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_RO_DATA_TAGS="+strings.Join(tags, " "),
		"OCI_RO_DATA_MANIFESTS="+strings.Join(manifests, " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(blobs, " "),
		"OCI_RO_DATA_REFERRERS="+strings.Join(manifests, " "),
	)
	out, err := cmd.CombinedOutput()
	if werr := os.WriteFile(filepath.Join(results, "output.txt"), out, 0o644); werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		// The suite at this version prints its whole report, then panics
		// writing results.yaml when push is off (runner.ReportResultsYAML
		// reads the test data of the push-only blob tests, which read-only
		// mode never creates). The printed report is complete, and it is
		// what is checked below; any other failure fails the test.
		if !strings.Contains(string(out), "ReportResultsYAML") {
			t.Fatalf("the conformance suite failed: %v\n%s", err, out)
		}
		t.Logf("the conformance suite panicked after its report, in ReportResultsYAML (a known defect of read-only mode at this version)")
	}
	if !strings.Contains(string(out), "OCI Conformance Result: Pass") {
		t.Fatalf("the conformance suite did not pass:\n%s", out)
	}
	checkConformance(t, out, []string{"Ping", "Tag listing", "Blob get", "Blob head", "Manifest get by digest", "Manifest get by tag",
		"Manifest head by digest", "Manifest head by tag", "Referrers", "Read Only Inputs", "Invalid Manifest Digest"}, nil)
	if t.Failed() {
		t.Logf("conformance suite output:\n%s", out)
	}
}

// TestOCIPush pushes into dev over /v2/ with plain HTTP, on every stack:
// monolithic blob uploads, a mount, and a manifest PUT by semver tag that
// is a publish, with its immutability; other environments take no pushes.
func TestOCIPush(t *testing.T) {
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, kind, nil)
			pub := basic(s.key("dev", auth.RolePublisher))
			repo := s.url + "/v2/dev/team/pushed"
			files := map[string][]byte{"weights.bin": randomBytes(t, 1<<20+17), "config/model.json": []byte(`{"layers":2}`)}
			digests := map[string]string{}
			for path, content := range files {
				digests[path] = registry.DigestOf(content).String()
			}

			// POST, then PUT ?digest= with the whole body.
			resp, data := ociSend(t, http.MethodPost, repo+"/blobs/uploads/", pub, nil)
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "/v2/dev/team/pushed/blobs/uploads/") {
				t.Fatalf("POST upload = %d %q %s", resp.StatusCode, loc, data)
			}
			resp, data = ociSend(t, http.MethodPut, s.url+withQuery(loc, "digest", digests["weights.bin"]), pub, files["weights.bin"])
			if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != digests["weights.bin"] {
				t.Fatalf("PUT upload = %d %s", resp.StatusCode, data)
			}
			// One POST ?digest= with the body.
			resp, data = ociSend(t, http.MethodPost, repo+"/blobs/uploads/?digest="+digests["config/model.json"], pub, files["config/model.json"])
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST ?digest= = %d %s", resp.StatusCode, data)
			}
			// A mount of a stored blob is a lookup; of a missing one, an upload.
			resp, data = ociSend(t, http.MethodPost, repo+"/blobs/uploads/?mount="+digests["weights.bin"]+"&from=dev/other", pub, nil)
			if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") != "/v2/dev/team/pushed/blobs/"+digests["weights.bin"] {
				t.Errorf("mount of a stored blob = %d %q %s", resp.StatusCode, resp.Header.Get("Location"), data)
			}
			resp, _ = ociSend(t, http.MethodPost, repo+"/blobs/uploads/?mount="+registry.DigestOf([]byte("none")).String()+"&from=dev/other", pub, nil)
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("mount of a missing blob = %d, want 202 (an upload)", resp.StatusCode)
			}
			for _, c := range []struct {
				name, method, path string
				body               []byte
				status             int
				code               string
			}{
				{"wrong digest", http.MethodPut, withQuery(ociOpen(t, s, repo, pub), "digest", digests["weights.bin"]), []byte("other"), http.StatusBadRequest, "DIGEST_INVALID"},
				{"no digest", http.MethodPut, ociOpen(t, s, repo, pub), nil, http.StatusBadRequest, "DIGEST_INVALID"},
				{"unknown upload", http.MethodPut, "/v2/dev/team/pushed/blobs/uploads/nope?digest=" + digests["weights.bin"], nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
				{"finished upload", http.MethodPut, withQuery(loc, "digest", digests["weights.bin"]), nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
			} {
				resp, data := ociSend(t, c.method, s.url+c.path, pub, c.body)
				if code := ociErrorCode(t, c.name, resp, data); resp.StatusCode != c.status || code != c.code {
					t.Errorf("%s: %s %s = %d %s, want %d %s", c.name, c.method, c.path, resp.StatusCode, code, c.status, c.code)
				}
			}

			manifest := func(extra map[string][]byte, artifactType string) []byte {
				var layers []string
				for _, path := range []string{"weights.bin", "config/model.json"} {
					layers = append(layers, `{"mediaType":"application/octet-stream","digest":"`+digests[path]+`","size":`+itoa(int64(len(files[path])))+
						`,"annotations":{"org.opencontainers.image.title":"`+path+`"}}`)
				}
				for path, content := range extra {
					layers = append(layers, `{"mediaType":"text/plain","digest":"`+registry.DigestOf(content).String()+`","size":`+itoa(int64(len(content)))+
						`,"annotations":{"org.opencontainers.image.title":"`+path+`"}}`)
				}
				return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"` + artifactType +
					`","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[` +
					strings.Join(layers, ",") + `]}`)
			}
			mt := "Content-Type: application/vnd.oci.image.manifest.v1+json"
			for i := 0; i < 2; i++ { // a re-push of the same content is idempotent
				resp, data = ociSend(t, http.MethodPut, repo+"/manifests/v1.0.0", pub, manifest(nil, "application/vnd.stagegate.model.v1"), mt)
				if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(resp.Header.Get("Location"), "/v2/dev/team/pushed/manifests/sha256:") {
					t.Fatalf("PUT manifest (%d) = %d %q %s", i, resp.StatusCode, resp.Header.Get("Location"), data)
				}
			}
			rec, err := s.client(s.key("dev", auth.RoleReader)).GetVersion(context.Background(), "dev", "team/pushed", "1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			if rec.Kind != registry.KindModel || len(rec.Files) != 2 || resp.Header.Get("Location") != "/v2/dev/team/pushed/manifests/"+rec.ManifestDigest.String() {
				t.Errorf("the pushed version = %+v, Location %q", rec, resp.Header.Get("Location"))
			}
			extra := map[string][]byte{"notes.txt": []byte("changed")}
			resp, _ = ociSend(t, http.MethodPost, repo+"/blobs/uploads/?digest="+registry.DigestOf(extra["notes.txt"]).String(), pub, extra["notes.txt"])
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST notes.txt = %d", resp.StatusCode)
			}
			for _, c := range []struct {
				name, ref string
				body      []byte
				status    int
				code      string
			}{
				{"immutable", "1.0.0", manifest(extra, "application/vnd.stagegate.model.v1"), http.StatusConflict, "TAG_INVALID"},
				{"not semver", "latest", manifest(nil, ""), http.StatusBadRequest, "TAG_INVALID"},
				{"by digest", registry.DigestOf(manifest(nil, "")).String(), manifest(nil, ""), http.StatusMethodNotAllowed, "UNSUPPORTED"},
				{"missing blob", "1.0.1", manifest(map[string][]byte{"gone.txt": []byte("never uploaded")}, ""), http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN"},
				{"not json", "1.0.2", []byte("{"), http.StatusBadRequest, "MANIFEST_INVALID"},
				{"index", "1.0.3", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`), http.StatusBadRequest, "MANIFEST_INVALID"},
				{"other kind", "1.0.4", manifest(nil, "application/vnd.example+type"), http.StatusConflict, "MANIFEST_INVALID"}, // generic, and team/pushed is a model
			} {
				resp, data := ociSend(t, http.MethodPut, repo+"/manifests/"+c.ref, pub, c.body, mt)
				if code := ociErrorCode(t, c.name, resp, data); resp.StatusCode != c.status || code != c.code {
					t.Errorf("%s: PUT manifest %s = %d %s, want %d %s", c.name, c.ref, resp.StatusCode, code, c.status, c.code)
				}
			}

			// Other environments take no pushes, whatever the role.
			staging := basic(s.key("staging", auth.RoleAdmin))
			for _, c := range []struct{ method, path string }{
				{http.MethodPost, "/v2/staging/team/pushed/blobs/uploads/"},
				{http.MethodPut, "/v2/staging/team/pushed/manifests/1.0.0"},
			} {
				resp, data := ociSend(t, c.method, s.url+c.path, staging, nil)
				if code := ociErrorCode(t, c.path, resp, data); resp.StatusCode != http.StatusMethodNotAllowed || code != "UNSUPPORTED" {
					t.Errorf("%s %s in staging = %d %s, want 405 UNSUPPORTED", c.method, c.path, resp.StatusCode, code)
				}
			}
		})
	}
}

// ociPushWithOras: `oras push` into dev with a semver tag is a publish; the
// CLI's client pulls the version, it promotes into staging, and oras pulls
// it from there.
func ociPushWithOras(t *testing.T, s *stack, oras, host string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	files := map[string][]byte{"weights.bin": randomBytes(t, 1<<20+33), "config/model.json": []byte(`{"layers":2}`)}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(path)), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		return mustRunTool(t, dir, oras, args...)
	}
	run("login", "--plain-http", "-u", "ci", "-p", s.key("dev", auth.RolePublisher), host)
	run("push", "--plain-http", "--artifact-type", "application/vnd.stagegate.model.v1",
		host+"/dev/team/oras-model:v2.0.0", "weights.bin", "config/model.json")

	pulled := t.TempDir()
	rec, err := s.client(s.key("dev", auth.RoleReader)).Pull(ctx, "dev", "team/oras-model", "2.0.0", pulled)
	if err != nil {
		t.Fatalf("pull of the version oras pushed: %v", err)
	}
	if rec.Kind != registry.KindModel || rec.OriginalVersion != "v2.0.0" {
		t.Errorf("oras-pushed version = kind %s, original version %q", rec.Kind, rec.OriginalVersion)
	}
	for path, content := range files {
		if got, err := os.ReadFile(filepath.Join(pulled, filepath.FromSlash(path))); err != nil || !bytes.Equal(got, content) {
			t.Errorf("pulled %s: %v", path, err)
		}
	}
	if _, err := s.client(s.key("staging", auth.RolePromoter)).Promote(ctx, "staging", client.PromoteRequest{Name: "team/oras-model", Version: "2.0.0"}); err != nil {
		t.Fatalf("promote the oras-pushed version: %v", err)
	}
	// Pushing the same tag with other content is refused: versions are immutable.
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), []byte("other weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, dir, oras, "push", "--plain-http", "--artifact-type", "application/vnd.stagegate.model.v1",
		host+"/dev/team/oras-model:2.0.0", "weights.bin", "config/model.json"); err == nil || !strings.Contains(out, "versions are immutable") {
		t.Errorf("oras push of other content under 2.0.0 = %v\n%s, want the immutability refusal", err, out)
	}
	out := filepath.Join(dir, "from-staging")
	run("login", "--plain-http", "-u", "ci", "-p", s.key("staging", auth.RoleReader), host)
	run("pull", "--plain-http", "-o", out, host+"/staging/team/oras-model:2.0.0")
	for path, content := range files {
		if got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(path))); err != nil || !bytes.Equal(got, content) {
			t.Errorf("oras pull from staging: %s: %v", path, err)
		}
	}
}

// TestOCIConformancePush runs the conformance suite's blob push workflows
// against dev: those that fit stagegate (monolithic uploads and mounts)
// must pass. Manifest pushes are out of scope: the suite pushes under
// random non-semver tags and by digest, and expects its exact bytes back.
func TestOCIConformancePush(t *testing.T) {
	t.Parallel()
	bin := peerTool(t, "STAGEGATE_TEST_OCI_CONFORMANCE", "conformance")
	s := newStack(t, "embedded", nil)
	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"HOME="+results,
		"OCI_RESULTS_DIR="+results,
		"OCI_REGISTRY="+strings.TrimPrefix(s.url, "http://"),
		"OCI_TLS=disabled",
		"OCI_REPO1=dev/conformance/repo1",
		"OCI_REPO2=dev/conformance/repo2",
		"OCI_USERNAME=conformance",
		"OCI_PASSWORD="+s.key("dev", auth.RolePublisher),
		"OCI_VERSION=1.1",
		"OCI_FILTER_TEST=OCI Conformance Test/sha256 blobs",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_DATA_SHA512=false",
	)
	out, _ := cmd.CombinedOutput() // its exit status is not its verdict: checkConformance reads the report
	if err := os.WriteFile(filepath.Join(results, "output.txt"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	checkConformance(t, out, []string{"Blob push", "Blob post only", "Blob post put", "Blob mount", "Blob anonymous mount",
		"Blob get", "Blob get range", "Blob head", "Blob chunked", "Blob streaming", "Blobs sha256"}, nil)
	if t.Failed() {
		t.Logf("conformance suite output:\n%s", out)
	}
}

// checkConformance reads the suite's printed summary ("Name.....: Status"
// lines): every pass must be Pass, and nothing may be FAIL or Error but
// what allowedFail names.
func checkConformance(t *testing.T, out []byte, pass, allowedFail []string) {
	t.Helper()
	status := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(\S.*?)\.{2,}:\s+(\S+)$`).FindAllSubmatch(out, -1) {
		status[string(m[1])] = string(m[2])
	}
	for _, name := range pass {
		if status[name] != "Pass" {
			t.Errorf("conformance: %s is %q, want Pass", name, status[name])
		}
	}
	for name, st := range status {
		if (st == "FAIL" || st == "Error") && !slices.Contains(allowedFail, name) {
			t.Errorf("conformance: %s is %s", name, st)
		}
	}
}
