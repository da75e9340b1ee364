package server_test

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/httpapi"
	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/schemas"
)

// anyRole is the permission of a route that any authenticated caller may
// use: handle("", …) checks the key and binds no environment.
const anyRole auth.Permission = ""

// routeRoles lists every role; auth exports no enumeration of them.
var routeRoles = []auth.Role{auth.RoleReader, auth.RolePublisher, auth.RolePromoter, auth.RoleApprover, auth.RoleAdmin}

// publicRoutes take no credential. This list is the only way a route
// escapes TestRouteAuthorisation, so making a route public is a line here
// that a reviewer sees.
var publicRoutes = map[string]bool{
	"GET /healthz":                         true,
	"GET /readyz":                          true,
	"GET /metrics":                         true,
	"GET /v1/environments/:env/public-key": true,
	"GET /v1/openapi.yaml":                 true,
}

// ownAuthRoutes take a credential of their own instead of an API key (a
// webhook's secret): API keys, of any environment and role, are refused
// there with 401. Like publicRoutes, this list is how a route escapes the
// API key tests, so adding one is a line a reviewer sees.
var ownAuthRoutes = map[string]bool{
	"POST /v1/environments/:env/hooks/alertmanager": true,
}

// ownEnvironmentRoutes name no environment and act on the credential's
// own; envRoutes skips them, so they carry their example request here.
var ownEnvironmentRoutes = map[string]struct {
	path string
	perm auth.Permission
}{
	"GET /v1/whoami":        {"/v1/whoami", anyRole},
	"GET /v1/environments":  {"/v1/environments", anyRole},
	"GET /v1/audit":         {"/v1/audit", auth.PermRead},
	"GET /v1/gate-runs/:id": {"/v1/gate-runs/gr_0", auth.PermRead},
}

// envRoutePermissions states the permission of every request envRoutes
// makes, keyed by method and example path (query dropped, the blob digest
// written {digest}). A wildcard route dispatches several operations, so
// each operation states its own: one that later checks something else
// inside its handler shows up here.
var envRoutePermissions = map[string]auth.Permission{
	"GET /v1/environments/:env/artifacts":                                          auth.PermRead,
	"GET /v1/environments/:env/artifacts/":                                         auth.PermRead,
	"GET /v1/environments/:env/artifacts/agent/-/versions":                         auth.PermRead,
	"GET /v1/environments/:env/artifacts/agent/-/versions/1.0.0":                   auth.PermRead,
	"GET /v1/environments/:env/artifacts/agent/-/versions/1.0.0/manifest":          auth.PermRead,
	"GET /v1/environments/:env/artifacts/agent/-/versions/1.0.0/files/agent.yaml":  auth.PermRead,
	"GET /v1/environments/:env/artifacts/agent/-/resolve":                          auth.PermRead,
	"GET /v1/environments/:env/artifacts/agent/-/releases":                         auth.PermRead,
	"GET /v1/environments/:env/artifacts/agent/-/versions/1.0.0/evidence":          auth.PermRead,
	"GET /v1/environments/:env/artifacts/agent/-/versions/1.0.0/evidence/metrics":  auth.PermRead,
	"GET /v1/environments/:env/artifacts/agent/-/versions/1.0.0/attestation":       auth.PermRead,
	"HEAD /v1/environments/:env/artifacts/agent/-/versions/1.0.0/files/agent.yaml": auth.PermRead,
	"PUT /v1/environments/:env/artifacts/agent/-/versions/1.0.1":                   auth.PermPublish,
	"PUT /v1/environments/:env/artifacts/agent/-/versions/1.0.0/evidence/metrics":  auth.PermPublish,
	"POST /v1/environments/:env/artifacts/agent/-/versions/1.0.0/approvals":        auth.PermApprove,
	"POST /v1/environments/:env/promotions":                                        auth.PermPromote,
	"GET /v1/environments/:env/gate-runs/gr_0":                                     auth.PermRead,
	"HEAD /v1/environments/:env/blobs/{digest}":                                    auth.PermRead,
	"PUT /v1/environments/:env/blobs/{digest}":                                     auth.PermPublish,
	"GET /v1/environments/:env/audit":                                              auth.PermRead,
	"GET /v1/environments/:env/audit/export":                                       auth.PermRead,
	"GET /v1/environments/:env/audit/checkpoint":                                   auth.PermRead,
	"POST /v1/environments/:env/rollbacks":                                         auth.PermRollback,
	"GET /v1/environments/:env/releases":                                           auth.PermRead,
	"GET /v1/environments/:env/keys":                                               auth.PermManageKeys,
	"POST /v1/environments/:env/keys":                                              auth.PermManageKeys,
	"DELETE /v1/environments/:env/keys/key_0000":                                   auth.PermManageKeys,
}

// routeProbe is one concrete request of a credentialed route.
type routeProbe struct {
	id                 string // method and example path, as the tables key it
	method, path, body string // path keeps ":env" when the route names one
	perm               auth.Permission
}

func (p routeProbe) namesEnv() bool { return strings.Contains(p.path, ":env") }

// routeProbes lists a request for every credentialed operation of the
// router, read from the router itself. A route that is in no table fails
// the test, so whoever adds a route states who may call it.
func routeProbes(t *testing.T, s *stack, dgst string) []routeProbe {
	t.Helper()
	var out []routeProbe
	seen := map[string]bool{}
	for _, r := range httpapi.RoutesOf(s.srv.Handler()) {
		id := r.Method + " " + r.Path
		seen[id] = true
		if publicRoutes[id] || strings.Contains(r.Path, ":env") {
			continue // envRoutes below expands the environment routes
		}
		if isOCIRoute(r.Path) {
			continue // TestOCIRouteAuthorisation probes the OCI API
		}
		own, ok := ownEnvironmentRoutes[id]
		if !ok {
			t.Errorf("route %s is not in publicRoutes, names no environment and is not in ownEnvironmentRoutes: state its permission there", id)
			continue
		}
		out = append(out, routeProbe{id: id, method: r.Method, path: own.path, perm: own.perm})
	}
	for id := range publicRoutes {
		if !seen[id] {
			t.Errorf("publicRoutes lists %s, which the router does not have", id)
		}
	}
	for id := range ownEnvironmentRoutes {
		if !seen[id] {
			t.Errorf("ownEnvironmentRoutes lists %s, which the router does not have", id)
		}
	}
	for id := range ownAuthRoutes {
		if !seen[id] {
			t.Errorf("ownAuthRoutes lists %s, which the router does not have", id)
		}
	}
	used := map[string]bool{}
	for _, r := range envRoutes(t, s, dgst) {
		path, _, _ := strings.Cut(r.path, "?")
		id := r.method + " " + strings.ReplaceAll(path, dgst, "{digest}")
		perm, ok := envRoutePermissions[id]
		if !ok {
			t.Errorf("request %s of envRoutes is not in envRoutePermissions: state its permission there", id)
			continue
		}
		used[id] = true
		out = append(out, routeProbe{id: id, method: r.method, path: r.path, body: r.body, perm: perm})
	}
	for id := range envRoutePermissions {
		if !used[id] {
			t.Errorf("envRoutePermissions lists %s, which envRoutes does not request", id)
		}
	}
	return out
}

// routeAnswer is what a probe got back; code is empty for HEAD, whose
// answers have no body.
type routeAnswer struct {
	status int
	code   string
}

// sendProbe sends one request and, for an error status, insists on the
// JSON error envelope.
func sendProbe(t *testing.T, method, url, token, body string) routeAnswer {
	t.Helper()
	resp, data, err := rawRequest(t, method, url, token, []byte(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	ans := routeAnswer{status: resp.StatusCode}
	if method == http.MethodHead || resp.StatusCode < 400 {
		return ans
	}
	var eb api.ErrorBody
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct != "application/json" || json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Errorf("%s %s = %d with %q %.200s, want the JSON error envelope", method, url, resp.StatusCode, ct, data)
	}
	ans.code = eb.Error.Code
	return ans
}

// TestRouteAuthorisation sends every credentialed operation of the router,
// in every environment, without a token, with a bad one, with a key of
// another environment and with a key of each role of its own, so a route
// added later cannot skip authentication or authorisation.
func TestRouteAuthorisation(t *testing.T) {
	s := newStack(t, "embedded", nil)
	envs := []string{"dev", "staging", "prod"}
	keys := map[string]map[auth.Role]string{}
	for _, env := range envs {
		keys[env] = map[auth.Role]string{}
		for _, role := range routeRoles {
			keys[env][role] = s.key(env, role)
		}
	}
	// The examples read agent@1.0.0, so permitted reads find something.
	if _, err := push(t, s.client(keys["dev"][auth.RoleAdmin]), "dev", "agent@1.0.0", "agent-config", map[string][]byte{"agent.yaml": []byte("model: x\n")}); err != nil {
		t.Fatal(err)
	}
	probes := routeProbes(t, s, registry.DigestOf([]byte("model: x\n")).String())

	for id := range publicRoutes {
		method, path, _ := strings.Cut(id, " ")
		if ans := sendProbe(t, method, s.url+strings.ReplaceAll(path, ":env", "dev"), "", ""); ans.status != http.StatusOK {
			t.Errorf("public %s without a credential = %d %s, want 200", id, ans.status, ans.code)
		}
	}

	// Routes with their own credential refuse every API key, and no
	// credential, in every environment.
	for id := range ownAuthRoutes {
		method, path, _ := strings.Cut(id, " ")
		for _, env := range envs {
			for name, token := range map[string]string{"no token": "", "bad token": "sgk_not-a-real-key",
				env + " admin key": keys[env][auth.RoleAdmin]} {
				ans := sendProbe(t, method, s.url+strings.ReplaceAll(path, ":env", env), token, "{}")
				if ans.status != http.StatusUnauthorized || ans.code != registry.CodeUnauthenticated.Name {
					t.Errorf("%s in %s with %s = %d %s, want 401 unauthenticated", id, env, name, ans.status, ans.code)
				}
			}
		}
	}

	type refusal struct {
		name, token string
		status      int
		code        string
	}
	for _, p := range probes {
		for i, env := range envs {
			url := s.url + strings.ReplaceAll(p.path, ":env", env)
			refusals := []refusal{
				{"no token", "", http.StatusUnauthorized, registry.CodeUnauthenticated.Name},
				{"bad token", "sgk_not-a-real-key", http.StatusUnauthorized, registry.CodeUnauthenticated.Name},
			}
			if p.namesEnv() {
				// An admin key, so that only the environment can be the reason.
				other := envs[(i+1)%len(envs)]
				refusals = append(refusals, refusal{other + " admin key", keys[other][auth.RoleAdmin], http.StatusForbidden, registry.CodeWrongEnvironment.Name})
			}
			for _, r := range refusals {
				ans := sendProbe(t, p.method, url, r.token, p.body)
				if ans.status != r.status || (p.method != http.MethodHead && ans.code != r.code) {
					t.Errorf("%s in %s with %s = %d %s, want %d %s", p.id, env, r.name, ans.status, ans.code, r.status, r.code)
				}
			}

			// Roles are probed rather than assumed: the roles refused with
			// 403 forbidden must be exactly those the table says lack the
			// permission. A permitted role may still meet a refusal of the
			// domain (publish_not_allowed outside the first environment),
			// which comes after authorisation and has its own code.
			var refused, lacking []auth.Role
			for _, role := range routeRoles {
				if p.perm != anyRole && !role.Allows(p.perm) {
					lacking = append(lacking, role)
				}
				ans := sendProbe(t, p.method, url, keys[env][role], p.body)
				switch {
				case ans.status == http.StatusForbidden && (p.method == http.MethodHead || ans.code == registry.CodeForbidden.Name):
					refused = append(refused, role)
				case ans.status == http.StatusUnauthorized || ans.code == registry.CodeWrongEnvironment.Name:
					t.Errorf("%s in %s with its own %s key = %d %s", p.id, env, role, ans.status, ans.code)
				}
			}
			if !slices.Equal(refused, lacking) {
				t.Errorf("%s in %s: roles refused 403 forbidden %v, want those without %q: %v", p.id, env, refused, p.perm, lacking)
			}
		}
	}
}

// TestOpenAPIDocumentsRouter: schemas/openapi.yaml documents exactly the
// router's routes and methods, and says which take no credential and which
// answer 401 and 403.
//
// Mapping rule: a documented path, with each {param} filled with a sample
// value, maps to the route gin itself dispatches it to (a router rebuilt
// from RoutesOf). Where that route has no wildcard, the document spells its
// template ({param} for :param). The artifact wildcard
// /v1/environments/:env/artifacts/*rest is documented only through its
// concrete operations under /v1/environments/{env}/artifacts/{name}/-/…,
// and each of them is sent to the running server, which must not answer
// "no such route" or 405: the wildcard's handler dispatches it.
func TestOpenAPIDocumentsRouter(t *testing.T) {
	s := newStack(t, "embedded", nil)
	ctx := context.Background()
	admin := s.key("dev", auth.RoleAdmin)
	file := []byte("be brief\n")
	if _, err := push(t, s.client(admin), "dev", "team/agent@1.0.0", "agent-config", map[string][]byte{"prompts/system.txt": file}); err != nil {
		t.Fatal(err)
	}
	samples := map[string]string{
		"env": "dev", "name": "team/agent", "version": "1.0.0", "path": "prompts/system.txt",
		"digest": registry.DigestOf(file).String(), "id": "gr_0", "type": "metrics",
	}

	doc, err := openapi3.NewLoader().LoadFromData(schemas.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("schemas/openapi.yaml does not validate: %v", err)
	}

	routes := httpapi.RoutesOf(s.srv.Handler())
	dispatch := routeDispatcher(routes)
	param := regexp.MustCompile(`\{([^}]+)\}`)
	ginParam := regexp.MustCompile(`:([^/]+)`)
	documented := map[string]bool{}
	operations := map[string][]*regexp.Regexp{} // method → documented paths
	for path, item := range doc.Paths.Map() {
		var missing []string
		concrete := param.ReplaceAllStringFunc(path, func(m string) string {
			v, ok := samples[m[1:len(m)-1]]
			if !ok {
				missing = append(missing, m)
			}
			return v
		})
		if len(missing) > 0 {
			t.Errorf("%s: no sample value for %v: add one to samples", path, missing)
			continue
		}
		for method, op := range item.Operations() {
			route, ok := dispatch(method, concrete)
			if !ok {
				t.Errorf("%s %s is documented, but the router has no such route", method, path)
				continue
			}
			if !strings.Contains(route, "*") && param.ReplaceAllString(path, ":$1") != route {
				t.Errorf("%s %s is served by route %s: document it as %s", method, path, route, ginParam.ReplaceAllString(route, "{$1}"))
			}
			id := method + " " + route
			documented[id] = true
			operations[method] = append(operations[method], documentedPathPattern(path))
			checkDocumentedOperation(t, method, path, op, id)
			checkServed(t, s, method, path, concrete, admin, op)
		}
	}
	for _, r := range routes {
		// The OCI API (/v2/) is the distribution spec's, documented in the README.
		if id := r.Method + " " + r.Path; !documented[id] && !isOCIRoute(r.Path) {
			t.Errorf("route %s is not documented in schemas/openapi.yaml", id)
		}
	}
	// Every operation the authorisation test sends is documented too, so a
	// new operation behind an existing wildcard cannot go undocumented. The
	// router answers a listing's path with a trailing slash as without.
	for _, p := range routeProbes(t, s, samples["digest"]) {
		path, _, _ := strings.Cut(p.path, "?")
		path = strings.TrimSuffix(path, "/")
		if !slices.ContainsFunc(operations[p.method], func(re *regexp.Regexp) bool { return re.MatchString(path) }) {
			t.Errorf("operation %s %s is served but not documented in schemas/openapi.yaml", p.method, path)
		}
	}

	// What is served is the embedded, tested document.
	resp, body, err := rawRequest(t, http.MethodGet, s.url+"/v1/openapi.yaml", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" || string(body) != string(schemas.OpenAPI()) {
		t.Errorf("GET /v1/openapi.yaml = %d %q, %d bytes; want 200 application/yaml with the embedded document", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
}

// documentedPathPattern matches the concrete paths of a documented path;
// artifact names and file paths may contain '/'.
func documentedPathPattern(path string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatchIndex(path, -1) {
		b.WriteString(regexp.QuoteMeta(path[last:m[0]]))
		if p := path[m[2]:m[3]]; p == "name" || p == "path" {
			b.WriteString(`.+`)
		} else {
			b.WriteString(`[^/]+`)
		}
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(path[last:]) + "$")
	return regexp.MustCompile(b.String())
}

// routeDispatcher rebuilds the router's route table in a bare gin engine, so
// gin's own matching says which route a documented path belongs to.
func routeDispatcher(routes []httpapi.Route) func(method, path string) (string, bool) {
	engine := gin.New()
	engine.RedirectTrailingSlash = false
	for _, r := range routes {
		engine.Handle(r.Method, r.Path, func(c *gin.Context) { c.Header("X-Route", c.FullPath()) })
	}
	return func(method, path string) (string, bool) {
		rec := httptest.NewRecorder()
		engine.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		route := rec.Header().Get("X-Route")
		return route, route != ""
	}
}

// checkDocumentedOperation: an operation takes no credential exactly when
// its route is public; otherwise it documents 401, and 403 exactly when
// authorisation can refuse it (the route names an environment, or some role
// lacks its permission). Errors are the JSON envelope, except on HEAD.
func checkDocumentedOperation(t *testing.T, method, path string, op *openapi3.Operation, id string) {
	t.Helper()
	public := op.Security != nil && len(*op.Security) == 0
	if public != publicRoutes[id] {
		t.Errorf("%s %s: documented as public %v, publicRoutes says %v", method, path, public, publicRoutes[id])
	}
	if publicRoutes[id] {
		return
	}
	may403 := strings.Contains(id, ":env") && !ownAuthRoutes[id]
	if own, ok := ownEnvironmentRoutes[id]; ok && own.perm != anyRole {
		for _, role := range routeRoles {
			may403 = may403 || !role.Allows(own.perm)
		}
	}
	for status, want := range map[string]bool{"401": true, "403": may403} {
		resp := op.Responses.Value(status)
		if (resp != nil) != want {
			t.Errorf("%s %s: documents %s %v, want %v", method, path, status, resp != nil, want)
			continue
		}
		if resp == nil {
			continue
		}
		media := resp.Value.Content.Get("application/json")
		switch {
		case method == http.MethodHead && media != nil:
			t.Errorf("%s %s: %s documents a body, but HEAD answers have none", method, path, status)
		case method != http.MethodHead && (media == nil || media.Schema == nil || media.Schema.Ref != "#/components/schemas/Error"):
			t.Errorf("%s %s: %s does not document the Error envelope as application/json", method, path, status)
		}
	}
}

// checkServed sends a documented operation to the server: any answer but
// the router's or a wildcard handler's "no such route", or 405, shows the
// operation is served. Public operations are sent without a credential.
func checkServed(t *testing.T, s *stack, method, path, concrete, admin string, op *openapi3.Operation) {
	t.Helper()
	token := admin
	if op.Security != nil && len(*op.Security) == 0 {
		token = ""
	}
	resp, data, err := rawRequest(t, method, s.url+concrete, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	var eb api.ErrorBody
	_ = json.Unmarshal(data, &eb)
	notServed := resp.StatusCode == http.StatusMethodNotAllowed ||
		(resp.StatusCode == http.StatusNotFound && (method == http.MethodHead || strings.HasPrefix(eb.Error.Message, "no such route")))
	if notServed || (token == "" && resp.StatusCode != http.StatusOK) {
		t.Errorf("documented %s %s: %s %s = %d %s", method, path, method, concrete, resp.StatusCode, eb.Error.Message)
	}
}
