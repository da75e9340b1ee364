package dashboard_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/internal/auth"
)

// TestPages walks every page as a person holding a staging and a prod key
// and checks status, content, escaping and security headers.
func TestPages(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	b := w.browser()
	if p := b.signIn(w.key("staging", auth.RolePromoter), w.key("prod", auth.RolePromoter)); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in = %d:\n%s", p.status, p.body)
	}
	prodRun := "/ui/environments/prod/gate-runs/" + w.refusals["prod"]
	stagingRun := "/ui/environments/staging/gate-runs/" + w.refusals["staging"]
	tests := []struct {
		path   string
		status int
		want   []string // substrings of the page
		not    []string
	}{
		{"/ui/", 200, []string{`data-env="staging"`, `data-env="prod"`, "team/agent", "1.1.0", "differs: staging has 1.1.0"},
			[]string{`<th scope="col" data-env="dev">`, "risk/model"}}, // risk/model is only in dev
		{"/ui/?kind=model", 200, []string{"risk/scorer"}, []string{"team/agent"}},
		{"/ui/?name=AGENT", 200, []string{"team/agent"}, []string{"risk/scorer"}},
		{"/ui/artifacts/team/agent", 200, []string{"Release timeline in prod", "Versions in staging", "Preview gates", `id="detail-prod-1.0.0"`, "signed</span> by prod's key", `id="detail-staging-1.1.0"`, "signed</span> by staging's key", "team=" + html.EscapeString(labelXSS)}, nil},
		{"/ui/artifacts/risk/scorer", 200, []string{`id="detail-staging-1.0.0"`, "<strong>junit</strong>", "2 tests, 0 failures, 0 errors, 0 skipped",
			"download junit", "2 test(s): 2 passed, 0 skipped", "Not in prod"}, nil},
		{"/ui/artifacts/no/such", 200, []string{"Not in staging", "Not in prod"}, nil},
		{prodRun, 200, []string{"approvals", "failed", "refused", `id="policy-digest">sha256:`, "none (nothing was released"}, nil},
		{stagingRun, 200, []string{"junit", html.EscapeString(testNameXSS)}, nil},
		{"/ui/audit?env=prod", 200, []string{"artifact.promote", "Export these events", "Audit trail of prod"}, nil},
		{"/ui/audit?env=prod&outcome=denied", 200, []string{"st-denied"}, []string{"st-success"}},
		// The refused promotion's event links the gate run that refused it.
		{"/ui/audit?env=prod&action=artifact.promote&outcome=denied", 200, []string{"gate_failed", `href="` + prodRun + `"`}, nil},
		{"/ui/audit?env=prod&since=yesterday", 400, []string{"invalid_request"}, nil},
		{"/ui/approve?env=prod&name=team/agent&version=1.1.0", 200, []string{"Approve team/agent@1.1.0", `name="csrf"`}, nil},
		{"/ui/rollback?env=prod&name=team/agent", 200, []string{"No earlier release"}, nil},
		{"/ui/environments/prod/gate-runs/gr_nope", 404, []string{"not_found"}, nil},
		{"/ui/nowhere", 404, []string{"No such page"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p := b.get(tt.path)
			if p.status != tt.status {
				t.Fatalf("status %d, want %d:\n%s", p.status, tt.status, p.body)
			}
			for _, s := range tt.want {
				if !strings.Contains(p.body, s) {
					t.Errorf("page lacks %q:\n%s", s, p.body)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(p.body, s) {
					t.Errorf("page has %q", s)
				}
			}
			checkPage(t, p)
		})
	}

	// The export link streams the API's JSON Lines.
	exp := b.get("/ui/audit/export?env=prod&action=artifact.promote")
	if exp.status != 200 || !strings.Contains(exp.header.Get("Content-Type"), "jsonl") || !strings.Contains(exp.body, `"action":"artifact.promote"`) ||
		!strings.Contains(exp.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("export = %d %q %q\n%s", exp.status, exp.header.Get("Content-Type"), exp.header.Get("Content-Disposition"), exp.body)
	}
	// The stylesheet is this origin's only subresource.
	if css := b.get("/ui/static/style.css"); css.status != 200 || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet = %d %q", css.status, css.header.Get("Content-Type"))
	}
	if p := b.get("/ui"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/" {
		t.Errorf("/ui = %d %q", p.status, p.header.Get("Location"))
	}
}

// checkPage asserts what every HTML page must have: the security headers,
// and no payload unescaped.
func checkPage(t *testing.T, p page) {
	t.Helper()
	csp := p.header.Get("Content-Security-Policy")
	if csp == "" || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if p.header.Get("X-Frame-Options") != "DENY" || p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("X-Frame-Options = %q, Cache-Control = %q", p.header.Get("X-Frame-Options"), p.header.Get("Cache-Control"))
	}
	// Escaped, a payload is text; only its raw form could run.
	for _, raw := range []string{labelXSS, reasonXSS, testNameXSS, metricXSS, "<img"} {
		if strings.Contains(p.body, raw) {
			t.Errorf("page contains %q unescaped", raw)
		}
	}
	if strings.Contains(p.body, " style=") || strings.Contains(p.body, "<style") || strings.Contains(p.body, "<script") {
		t.Errorf("page has inline style or script")
	}
}

// TestActionsAndEscaping approves, promotes and rolls back through the
// forms, and finds every user-supplied string escaped where it shows.
func TestActionsAndEscaping(t *testing.T) {
	t.Parallel()
	w := newWorld(t)

	approver := w.browser()
	approver.signIn(w.key("prod", auth.RoleApprover))
	if p := approver.get("/ui/artifacts/team/agent"); strings.Contains(p.body, "Preview gates") || !strings.Contains(p.body, "Approve…") {
		t.Errorf("an approver is offered promotion, or no approval:\n%s", p.body)
	}
	p := approver.post("/ui/approve", url.Values{"env": {"prod"}, "name": {"team/agent"}, "version": {"1.1.0"}, "comment": {reasonXSS}})
	if p.status != 200 || !strings.Contains(p.body, "Approved team/agent@1.1.0 for prod") {
		t.Fatalf("approve = %d:\n%s", p.status, p.body)
	}
	checkPage(t, p)
	// The API audited the approval under the page's request id.
	if id := p.header.Get("X-Request-ID"); id == "" ||
		!strings.Contains(approver.get("/ui/audit?env=prod&action=artifact.approve&requestId="+url.QueryEscape(id)).body, "team/agent@1.1.0") {
		t.Errorf("no approval audited under the page's request id %q", id)
	}
	// The approver's key cannot promote: the API says so, not the page.
	p = approver.post("/ui/promote", url.Values{"env": {"prod"}, "name": {"team/agent"}, "version": {"1.1.0"}, "confirmed": {"yes"}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "forbidden") {
		t.Errorf("approver promoting = %d:\n%s", p.status, p.body)
	}

	promoter := w.browser()
	promoter.signIn(w.key("staging", auth.RolePromoter), w.key("prod", auth.RolePromoter))
	p = promoter.post("/ui/promote/preview", url.Values{"env": {"prod"}, "name": {"team/agent"}, "version": {"1.1.0"}})
	if p.status != 200 || !strings.Contains(p.body, "all required checks pass") || !strings.Contains(p.body, `id="confirm-promote"`) {
		t.Fatalf("preview = %d:\n%s", p.status, p.body)
	}
	checkPage(t, p)
	if got := promoter.get("/ui/"); !strings.Contains(got.body, "differs: staging has 1.1.0") {
		t.Errorf("a dry run changed the matrix:\n%s", got.body)
	}
	p = promoter.post("/ui/promote", url.Values{"env": {"prod"}, "name": {"team/agent"}, "version": {"1.1.0"}, "confirmed": {"yes"}, "reason": {reasonXSS}})
	if p.status != 200 || !strings.Contains(p.body, "team/agent@1.1.0 is released in prod") || !strings.Contains(p.body, html.EscapeString(reasonXSS)) {
		t.Fatalf("promote = %d:\n%s", p.status, p.body)
	}
	checkPage(t, p)
	// The promotion's gate run links its signed attestation, a download.
	runLink := regexp.MustCompile(`href="(/ui/environments/prod/gate-runs/[^"]+)"`).FindStringSubmatch(p.body)
	if runLink == nil {
		t.Fatalf("promotion result links no gate run:\n%s", p.body)
	}
	run := promoter.get(runLink[1])
	att := regexp.MustCompile(`href="(/ui/environments/prod/attestation\?[^"]+)"`).FindStringSubmatch(run.body)
	if run.status != 200 || !strings.Contains(run.body, "promotion from staging") || att == nil {
		t.Fatalf("gate run of the promotion = %d:\n%s", run.status, run.body)
	}
	if a := promoter.get(html.UnescapeString(att[1])); a.status != 200 || !strings.Contains(a.header.Get("Content-Disposition"), "attachment") ||
		!strings.Contains(a.body, "payloadType") {
		t.Errorf("attestation download = %d %q:\n%s", a.status, a.header.Get("Content-Disposition"), a.body)
	}
	if got := promoter.get("/ui/"); strings.Contains(got.body, "differs: staging has 1.1.0") {
		t.Errorf("prod still differs after the promotion:\n%s", got.body)
	}

	form := promoter.get("/ui/rollback?env=prod&name=team/agent")
	if !strings.Contains(form.body, "<option>1.0.0</option>") {
		t.Fatalf("rollback form offers no 1.0.0:\n%s", form.body)
	}
	if p := promoter.post("/ui/rollback", url.Values{"env": {"prod"}, "name": {"team/agent"}, "version": {"1.0.0"}, "reason": {"x"}}); p.status != http.StatusBadRequest {
		t.Errorf("rollback without the confirmation box = %d", p.status)
	}
	p = promoter.post("/ui/rollback", url.Values{"env": {"prod"}, "name": {"team/agent"}, "version": {"1.0.0"}, "reason": {reasonXSS}, "confirm": {"yes"}})
	if p.status != 200 || !strings.Contains(p.body, "is back on 1.0.0") {
		t.Fatalf("rollback = %d:\n%s", p.status, p.body)
	}
	checkPage(t, p)
	art := promoter.get("/ui/artifacts/team/agent")
	if !strings.Contains(art.body, "rollback") || !strings.Contains(art.body, html.EscapeString(reasonXSS)) {
		t.Errorf("timeline lacks the rollback and its escaped reason:\n%s", art.body)
	}
	checkPage(t, art)
	if a := promoter.get("/ui/audit?env=prod&action=artifact.approve"); !strings.Contains(a.body, "artifact.approve") {
		t.Errorf("audit lacks the approval:\n%s", a.body)
	}
}

// TestIsolation: a session holding only a dev key sees dev, and every
// request for prod is the API's 403, never prod data.
func TestIsolation(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	b := w.browser()
	b.signIn(w.key("dev", auth.RoleAdmin))
	m := b.get("/ui/")
	if !strings.Contains(m.body, `data-env="dev"`) || strings.Contains(m.body, `data-env="prod"`) || strings.Contains(m.body, `data-env="staging"`) {
		t.Errorf("a dev session's matrix shows other environments:\n%s", m.body)
	}
	art := b.get("/ui/artifacts/team/agent")
	if strings.Contains(art.body, "Release timeline") || strings.Contains(art.body, `id="env-prod"`) || strings.Contains(art.body, html.EscapeString(reasonXSS)) {
		t.Errorf("a dev session sees prod releases:\n%s", art.body)
	}
	for _, path := range []string{
		"/ui/environments/prod/gate-runs/" + w.refusals["prod"],
		"/ui/audit?env=prod",
		"/ui/audit/export?env=prod",
		"/ui/environments/prod/attestation?name=team/agent&version=1.0.0",
		"/ui/environments/staging/evidence?name=risk/scorer&version=1.0.0&type=junit",
		"/ui/rollback?env=prod&name=team/agent",
	} {
		p := b.get(path)
		if p.status != http.StatusForbidden || !strings.Contains(p.body, "wrong_environment") {
			t.Errorf("GET %s with a dev key = %d, want the API's 403 wrong_environment:\n%s", path, p.status, p.body)
		}
		if p.header.Get("Content-Disposition") != "" {
			t.Errorf("GET %s: a refusal is sent as a download", path)
		}
		if strings.Contains(p.body, "artifact.promote") || strings.Contains(p.body, "approvals") {
			t.Errorf("GET %s leaked prod data:\n%s", path, p.body)
		}
	}
	p := b.post("/ui/promote/preview", url.Values{"env": {"prod"}, "name": {"team/agent"}, "version": {"1.1.0"}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "wrong_environment") {
		t.Errorf("a dev key previewing a prod promotion = %d:\n%s", p.status, p.body)
	}
	// And the API filed the attempts in prod's own audit trail.
	prodAudit := w.browser()
	prodAudit.signIn(w.key("prod", auth.RoleReader))
	if a := prodAudit.get("/ui/audit?env=prod&outcome=denied"); !strings.Contains(a.body, "wrong_environment") {
		t.Errorf("prod's audit does not show the dev key's attempts:\n%s", a.body)
	}
}

// TestSignInAndCSRF: the forms refuse what did not come from this origin's
// own pages, sign-in refuses bad keys, and sign-out ends the session.
func TestSignInAndCSRF(t *testing.T) {
	t.Parallel()
	w := newWorld(t)

	b := w.browser()
	if p := b.get("/ui/"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/ui/signin") {
		t.Errorf("signed-out matrix = %d %q", p.status, p.header.Get("Location"))
	}
	if p := b.signIn("sg_not-a-key"); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Key 1 was not accepted") ||
		strings.Contains(p.body, "sg_not-a-key") {
		t.Errorf("bad key sign-in = %d:\n%s", p.status, p.body)
	}
	if p := b.signIn(w.key("prod", auth.RoleReader), w.key("prod", auth.RoleAdmin)); p.status != http.StatusBadRequest ||
		!strings.Contains(p.body, "Two keys for prod") {
		t.Errorf("two prod keys = %d:\n%s", p.status, p.body)
	}
	// A sign-in form posted without the form's own token (login CSRF).
	if p := b.do(http.MethodPost, "/ui/signin", url.Values{"key": {w.key("prod", auth.RoleReader)}}, nil); p.status != http.StatusForbidden {
		t.Errorf("sign-in without the form token = %d", p.status)
	}

	p := b.signIn(w.key("prod", auth.RoleApprover))
	if p.status != http.StatusSeeOther {
		t.Fatalf("sign-in = %d:\n%s", p.status, p.body)
	}
	cookie := strings.Join(p.header.Values("Set-Cookie"), "\n")
	for _, attr := range []string{"sg_ui_session=", "Path=/ui/", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("session cookie lacks %s:\n%s", attr, cookie)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("a plain-HTTP sign-in set a Secure cookie the browser would drop:\n%s", cookie)
	}
	// Behind a TLS-terminating proxy the cookie is Secure.
	tls := w.browser()
	m := signinField.FindStringSubmatch(tls.get("/ui/signin").body)
	p = tls.do(http.MethodPost, "/ui/signin", url.Values{"signin": {m[1]}, "key": {w.key("prod", auth.RoleReader)}},
		map[string]string{"X-Forwarded-Proto": "https"})
	if c := strings.Join(p.header.Values("Set-Cookie"), "\n"); p.status != http.StatusSeeOther || !strings.Contains(c, "Secure") {
		t.Errorf("sign-in behind TLS = %d, cookie:\n%s", p.status, c)
	}
	// Signing out of another site's page is refused; of a dead session, harmless.
	if p := b.do(http.MethodPost, "/ui/signout", url.Values{}, nil); p.status != http.StatusForbidden {
		t.Errorf("sign-out without the token = %d", p.status)
	}
	if p := w.browser().do(http.MethodPost, "/ui/signout", url.Values{}, nil); p.status != http.StatusSeeOther {
		t.Errorf("sign-out without a session = %d", p.status)
	}
	approve := url.Values{"env": {"prod"}, "name": {"team/agent"}, "version": {"1.1.0"}}
	for _, tt := range []struct {
		name   string
		csrf   string
		header map[string]string
	}{
		{"no token", "", nil},
		{"wrong token", "x" + b.csrf, nil},
		{"cross-site origin", b.csrf, map[string]string{"Origin": "https://evil.example"}},
		{"cross-site fetch", b.csrf, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		form := url.Values{}
		for k, v := range approve {
			form[k] = v
		}
		if tt.csrf != "" {
			form.Set("csrf", tt.csrf)
		}
		if p := b.do(http.MethodPost, "/ui/approve", form, tt.header); p.status != http.StatusForbidden {
			t.Errorf("%s: approve = %d, want 403", tt.name, p.status)
		}
	}
	if a := b.get("/ui/audit?env=prod&action=artifact.approve&version=1.1.0"); !strings.Contains(a.body, "No events") {
		t.Errorf("a refused form still approved:\n%s", a.body)
	}

	// Sign-out ends the session on the server: the old cookie is worthless.
	cookies := b.hc.Jar.Cookies(mustURL(t, w.url+"/ui/"))
	if p := b.post("/ui/signout", url.Values{}); p.status != http.StatusSeeOther {
		t.Fatalf("sign-out = %d", p.status)
	}
	replay := w.browser()
	replay.hc.Jar.SetCookies(mustURL(t, w.url+"/ui/"), cookies)
	if p := replay.get("/ui/"); p.status != http.StatusSeeOther {
		t.Errorf("the signed-out session's cookie still works: %d", p.status)
	}
	if p := b.get("/ui/"); p.status != http.StatusSeeOther {
		t.Errorf("still signed in after sign-out: %d", p.status)
	}
}

// TestEvidence: the artifact page reads each version's evidence documents
// (JUnit totals and failing tests, metrics), escapes what they say, and
// downloads them through the session's key for their environment only.
func TestEvidence(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	b := w.browser()
	b.signIn(w.key("dev", auth.RoleReader), w.key("staging", auth.RoleReader))
	p := b.get("/ui/artifacts/risk/model")
	for _, want := range []string{
		`id="detail-dev-1.0.0"`, "1 tests, 1 failures, 0 errors, 0 skipped",
		html.EscapeString(testNameXSS), html.EscapeString(metricXSS), "eval.auc", "0.93", "download metrics",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("risk/model page lacks %q:\n%s", want, p.body)
		}
	}
	checkPage(t, p)

	// Every download link on the page works, as an attachment of the
	// document's own type.
	links := regexp.MustCompile(`href="(/ui/environments/[^"]+/evidence\?[^"]+)"`).FindAllStringSubmatch(p.body, -1)
	if len(links) != 2 {
		t.Fatalf("want a junit and a metrics download link, got %v", links)
	}
	for _, l := range links {
		d := b.get(html.UnescapeString(l[1]))
		ct := d.header.Get("Content-Type")
		if d.status != 200 || !strings.Contains(d.header.Get("Content-Disposition"), "attachment") ||
			(ct != "application/xml" && ct != "application/json") || d.header.Get("X-Stagegate-Digest") == "" {
			t.Errorf("download %s = %d %q %q", l[1], d.status, ct, d.header.Get("Content-Disposition"))
		}
	}
	for _, tt := range []struct {
		path   string
		status int
		want   string
	}{
		{"/ui/environments/staging/evidence?name=risk/scorer&version=1.0.0&type=junit", 200, `<testcase name="auc"/>`},
		{"/ui/environments/staging/evidence?name=risk/scorer&version=1.0.0&type=metrics", 404, "evidence_not_found"},
		{"/ui/environments/staging/evidence?name=risk/model&version=1.0.0&type=junit", 404, "version_not_found"},
		{"/ui/environments/staging/evidence?name=risk/scorer&version=1.0.0&type=bogus", 400, "known type"},
		{"/ui/environments/staging/evidence?name=risk/scorer&version=1.0.0%0d%0aX:y&type=junit", 400, "known type"},
		// Only a prod key reads prod: this session holds none.
		{"/ui/environments/prod/evidence?name=team/agent&version=1.0.0&type=junit", 403, "wrong_environment"},
	} {
		d := b.get(tt.path)
		if d.status != tt.status || !strings.Contains(d.body, tt.want) {
			t.Errorf("GET %s = %d, want %d with %q:\n%s", tt.path, d.status, tt.status, tt.want, d.body)
		}
		if tt.status != 200 && d.header.Get("Content-Disposition") != "" {
			t.Errorf("GET %s: a refusal is sent as a download", tt.path)
		}
	}
}

// TestRefusalAuditedWithGateRun: the API's audit event of a promotion the
// gates refused names the gate run, so the trail leads to the report.
func TestRefusalAuditedWithGateRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	page, err := w.client("prod", auth.RoleReader).AuditPage(context.Background(), "prod",
		url.Values{"action": {"artifact.promote"}, "outcome": {"denied"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].ErrorCode != "gate_failed" || page.Events[0].Details["gateRunId"] != w.refusals["prod"] {
		t.Fatalf("refusal events = %+v, want one gate_failed naming %s", page.Events, w.refusals["prod"])
	}
	if _, ok := page.Events[0].Details["report"]; ok {
		t.Error("the audit event carries the whole report")
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestArtifactNamesValidated: a payload cannot be an artifact name; the
// page refuses it (and escapes the 404 it answers with).
func TestArtifactNamesValidated(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	b := w.browser()
	b.signIn(w.key("prod", auth.RoleReader))
	p := b.get("/ui/artifacts/" + url.PathEscape(labelXSS))
	if p.status != http.StatusNotFound {
		t.Errorf("payload name = %d", p.status)
	}
	checkPage(t, p)
}
