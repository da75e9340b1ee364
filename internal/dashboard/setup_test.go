package dashboard_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/internal/signing/signingtest"
)

// The payloads every page must escape. Artifact names are validated by
// the API, so they cannot carry one; labels, reasons and gate reasons can.
const (
	labelXSS    = `<script>alert("label")</script>`
	reasonXSS   = `<img src=x onerror=alert("reason")>`
	testNameXSS = `<script>alert("junit")</script>`
	metricXSS   = `<script>alert("metric")</script>`
)

// world is a running stagegate on the embedded default, with data that
// covers every page: releases in staging and prod, a refused promotion into
// prod, and a refused model whose gate reason carries a payload.
type world struct {
	t        *testing.T
	url      string
	srv      *server.Server
	keys     map[string]string // "env/role" → token
	refusals map[string]string // what → gate run id
}

func newWorld(t *testing.T) *world {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
		server.WithSigners(signingtest.Signers(t)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	w := &world{t: t, url: hs.URL, srv: srv, keys: map[string]string{}, refusals: map[string]string{}}
	w.seed()
	return w
}

func (w *world) key(env string, role auth.Role) string {
	w.t.Helper()
	id := env + "/" + string(role)
	if k, ok := w.keys[id]; ok {
		return k
	}
	handle, err := w.srv.Metadata().Env(env)
	if err != nil {
		w.t.Fatal(err)
	}
	name := env + "-" + string(role)
	token, _, err := auth.CreateKey(context.Background(), handle, env, auth.KeySpec{Name: name, Role: role,
		Owner: name + "@example.test", CreatedByOwner: auth.HostIdentity}, audit.Actor{Name: "test"}, time.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	w.keys[id] = token
	return token
}

func (w *world) client(env string, role auth.Role) *client.Client {
	return client.New(w.url, w.key(env, role), nil)
}

func (w *world) push(ref, kind string, files map[string][]byte, labels map[string]string) {
	w.t.Helper()
	dir := w.t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	local, err := client.CollectFiles([]string{dir})
	if err != nil {
		w.t.Fatal(err)
	}
	name, version, _ := strings.Cut(ref, "@")
	if _, err := w.client("dev", auth.RolePublisher).Push(context.Background(), "dev", name, version, local,
		client.PushOptions{Kind: kind, Labels: labels}); err != nil {
		w.t.Fatalf("push %s: %v", ref, err)
	}
}

func safetensors(values int) []byte {
	header := []byte(`{"w":{"dtype":"F32","shape":[` + strconv.Itoa(values) + `],"data_offsets":[0,` + strconv.Itoa(values*4) + `]}}`)
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, uint64(len(header)))
	buf.Write(header)
	buf.Write(make([]byte, values*4))
	return buf.Bytes()
}

func (w *world) seed() {
	t, ctx := w.t, context.Background()
	t.Helper()
	labels := map[string]string{"team": labelXSS}
	w.push("team/agent@1.0.0", "generic", map[string][]byte{"prompt.txt": []byte("one\n")}, labels)
	w.push("team/agent@1.1.0", "generic", map[string][]byte{"prompt.txt": []byte("two\n")}, labels)
	staging := w.client("staging", auth.RolePromoter)
	prod := w.client("prod", auth.RolePromoter)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if _, err := staging.Promote(ctx, "staging", client.PromoteRequest{Name: "team/agent", Version: v, Reason: reasonXSS}); err != nil {
			t.Fatalf("promote %s into staging: %v", v, err)
		}
	}
	if _, err := w.client("prod", auth.RoleApprover).Approve(ctx, "prod", "team/agent", "1.0.0", reasonXSS); err != nil {
		t.Fatal(err)
	}
	if _, err := prod.Promote(ctx, "prod", client.PromoteRequest{Name: "team/agent", Version: "1.0.0", Reason: reasonXSS}); err != nil {
		t.Fatalf("promote 1.0.0 into prod: %v", err)
	}
	// 1.1.0 has no prod approval: refused, and the refusal's gate run kept.
	_, err := prod.Promote(ctx, "prod", client.PromoteRequest{Name: "team/agent", Version: "1.1.0"})
	w.refusals["prod"] = gateRunOf(t, err)

	// A model whose failing test's name is a payload: the junit check's
	// reason quotes it.
	w.push("risk/model@1.0.0", "model", map[string][]byte{"model.safetensors": safetensors(8)}, nil)
	junit := `<testsuite name="s" tests="1" failures="1"><testcase name="` + strings.NewReplacer("<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(testNameXSS) +
		`"><failure/></testcase></testsuite>`
	if _, _, err := w.client("dev", auth.RolePublisher).AddEvidence(ctx, "dev", "risk/model", "1.0.0", "junit", []byte(junit)); err != nil {
		t.Fatal(err)
	}
	metrics := `{"` + strings.NewReplacer(`"`, `\"`).Replace(metricXSS) + `": 0.5, "eval": {"auc": 0.93}}`
	if _, _, err := w.client("dev", auth.RolePublisher).AddEvidence(ctx, "dev", "risk/model", "1.0.0", "metrics", []byte(metrics)); err != nil {
		t.Fatal(err)
	}
	_, err = staging.Promote(ctx, "staging", client.PromoteRequest{Name: "risk/model", Version: "1.0.0"})
	w.refusals["staging"] = gateRunOf(t, err)

	// A model with passing tests, released into staging: its evidence and
	// the JUnit totals its gates read show on its page.
	w.push("risk/scorer@1.0.0", "model", map[string][]byte{"model.safetensors": safetensors(4)}, nil)
	passing := `<testsuite name="eval" tests="2"><testcase name="auc"/><testcase name="latency"/></testsuite>`
	if _, _, err := w.client("dev", auth.RolePublisher).AddEvidence(ctx, "dev", "risk/scorer", "1.0.0", "junit", []byte(passing)); err != nil {
		t.Fatal(err)
	}
	if _, err := staging.Promote(ctx, "staging", client.PromoteRequest{Name: "risk/scorer", Version: "1.0.0"}); err != nil {
		t.Fatalf("promote risk/scorer: %v", err)
	}
}

func gateRunOf(t *testing.T, err error) string {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "gate_failed" {
		t.Fatalf("want gate_failed, got %v", err)
	}
	m := regexp.MustCompile(`"gateRunId":"([^"]+)"`).FindSubmatch(ae.Details)
	if m == nil {
		t.Fatalf("no gate run id in %s", ae.Details)
	}
	return string(m[1])
}

// browser is a cookie-keeping HTTP client that signs in through the form,
// as a person's browser does (no redirects followed, so tests see them).
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (w *world) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return &browser{t: w.t, base: w.url, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := page{status: resp.StatusCode, header: resp.Header, body: string(data)}
	if m := csrfField.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

var (
	csrfField   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	signinField = regexp.MustCompile(`name="signin" value="([^"]+)"`)
)

func (b *browser) get(path string) page { b.t.Helper(); return b.do(http.MethodGet, path, nil, nil) }

// post sends a form with the session's CSRF token.
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	form.Set("csrf", b.csrf)
	return b.do(http.MethodPost, path, form, nil)
}

// signIn signs in with the given keys and returns the status of the form's
// answer (303 on success).
func (b *browser) signIn(keys ...string) page {
	b.t.Helper()
	form := b.get("/ui/signin")
	m := signinField.FindStringSubmatch(form.body)
	if m == nil {
		b.t.Fatalf("sign-in form has no token:\n%s", form.body)
	}
	v := url.Values{"signin": {m[1]}, "key": keys}
	p := b.do(http.MethodPost, "/ui/signin", v, nil)
	if p.status == http.StatusSeeOther {
		b.get("/ui/") // picks up the session's CSRF token
	}
	return p
}
