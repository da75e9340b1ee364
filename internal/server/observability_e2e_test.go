package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/auth/oidctest"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/metrics"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/internal/signing/signingtest"
	"github.com/stagegate/stagegate/registry"
)

// Artifact and key names these tests use are distinctive so that finding one
// in a metric label (or a secret in a log) is unambiguous.
const (
	probeArtifact  = "obs-probe/model-zeta"
	failedArtifact = "obs-probe/broken-agent"
	validAgent     = "model: gpt-x\nsystem_prompt: Be brief.\n"
	invalidAgent   = "model: gpt-x\n" // no system_prompt: json-schema refuses it
)

// newLoggedStack is newStack with the server's log captured (JSON, at
// level) and, unless signers is false, the test's preloaded signing keys.
func newLoggedStack(t *testing.T, kind string, level slog.Level, tweak func(*config.Config), signers bool) (*stack, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	var opts []server.Option
	if signers {
		opts = append(opts, server.WithSigners(signingtest.Signers(t)))
	}
	return startStack(t, stackConfig(t, kind, tweak), logger, opts...), logs
}

// scrape fetches /metrics from base without a credential and parses it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// sample sums the series of family name whose labels include want: counter
// values, or observation counts of histograms.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	fam, ok := fams[name]
	if !ok {
		return 0
	}
	var sum float64
metrics:
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue metrics
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestMetricsAfterPublishAndPromotion: after a publish, a download, a
// promotion, a refused promotion and a bad token, /metrics (unauthenticated,
// on the main listener) shows each family with bounded labels only.
func TestMetricsAfterPublishAndPromotion(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		pubToken := s.key("dev", auth.RolePublisher)
		promoterToken := s.key("staging", auth.RolePromoter)
		pub, promoter := s.client(pubToken), s.client(promoterToken)
		agent := []byte(validAgent)
		if _, err := push(t, pub, "dev", probeArtifact+"@1.0.0", "agent-config", map[string][]byte{"agent.yaml": agent}); err != nil {
			t.Fatal(err)
		}
		if _, err := push(t, pub, "dev", failedArtifact+"@1.0.0", "agent-config", map[string][]byte{"agent.yaml": []byte(invalidAgent)}); err != nil {
			t.Fatal(err)
		}
		// push sends small files inside the publish: one blob uploaded on
		// its own, for the blob route's label.
		loose := []byte("a blob uploaded on its own")
		if _, err := pub.UploadBlob(ctx, "dev", registry.DigestOf(loose), bytes.NewReader(loose), int64(len(loose))); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Pull(ctx, "dev", probeArtifact, "1.0.0", t.TempDir()); err != nil {
			t.Fatal(err)
		}
		if _, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: probeArtifact, Version: "1.0.0"}); err != nil {
			t.Fatal(err)
		}
		_, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: failedArtifact, Version: "1.0.0"})
		wantAPIError(t, err, http.StatusUnprocessableEntity, registry.CodeGateFailed.Name)
		_, err = s.client("sgk_obs-probe-not-a-key").ListArtifacts(ctx, "dev")
		wantAPIError(t, err, http.StatusUnauthorized, registry.CodeUnauthenticated.Name)

		fams := scrape(t, s.url)
		artRoute := "/v1/environments/:env/artifacts/*rest"
		checks := []struct {
			what   string
			family string
			labels map[string]string
			min    float64
		}{
			{"publish requests by route template", metrics.RequestDuration, map[string]string{"route": artRoute, "method": "PUT", "status": "201"}, 2},
			{"blob uploads by route template", metrics.RequestDuration, map[string]string{"route": "/v1/environments/:env/blobs/:digest", "method": "PUT"}, 1},
			{"promotion requests", metrics.RequestDuration, map[string]string{"route": "/v1/environments/:env/promotions", "status": "422"}, 1},
			{"publishes in dev", metrics.Actions, map[string]string{"environment": "dev", "action": "artifact.publish", "outcome": "success", "code": ""}, 2},
			{"promotions into staging", metrics.Actions, map[string]string{"environment": "staging", "action": "artifact.promote", "outcome": "success"}, 1},
			{"refused promotions", metrics.Actions, map[string]string{"environment": "staging", "action": "artifact.promote", "outcome": "denied", "code": "gate_failed"}, 1},
			{"bad tokens", metrics.Actions, map[string]string{"environment": "dev", "action": audit.ActionAuthenticate, "outcome": "denied", "code": "unauthenticated"}, 1},
			{"passed gate checks", metrics.GateCheckDuration, map[string]string{"environment": "staging", "check": "promotion-order", "result": "passed"}, 2},
			{"failed gate checks", metrics.GateCheckDuration, map[string]string{"environment": "staging", "check": "json-schema", "result": "failed"}, 1},
			{"bytes uploaded", metrics.TransferBytes, map[string]string{"environment": "dev", "direction": "upload"}, float64(len(agent))},
			{"bytes downloaded", metrics.TransferBytes, map[string]string{"environment": "dev", "direction": "download"}, float64(len(agent))},
			{"blob puts", metrics.BlobOpDuration, map[string]string{"environment": "dev", "driver": s.cfg.Storage.Driver, "operation": "put", "result": "ok"}, 1},
			{"blob copies or puts into staging", metrics.BlobOpDuration, map[string]string{"environment": "staging", "driver": s.cfg.Storage.Driver, "result": "ok"}, 1},
			{"Go runtime", "go_goroutines", nil, 1},
			{"process", "process_resident_memory_bytes", nil, 1},
		}
		for _, c := range checks {
			if got := sample(fams, c.family, c.labels); got < c.min {
				t.Errorf("%s: %s%v = %v, want >= %v", c.what, c.family, c.labels, got, c.min)
			}
		}

		// Nothing a caller chose (names, versions, keys, owners, tokens,
		// raw paths) is a label value.
		forbidden := []string{"obs-probe", "model-zeta", "broken-agent", "1.0.0", "@example.test",
			"dev-publisher", "staging-promoter", pubToken, promoterToken, "sgk_"}
		for name, fam := range fams {
			for _, m := range fam.GetMetric() {
				for _, l := range m.GetLabel() {
					for _, bad := range forbidden {
						if strings.Contains(l.GetValue(), bad) {
							t.Errorf("%s has label %s=%q, which holds %q", name, l.GetName(), l.GetValue(), bad)
						}
					}
					if l.GetName() == "route" && l.GetValue() != metrics.Unmatched && !strings.HasPrefix(l.GetValue(), "/") {
						t.Errorf("%s route label %q is not a route template", name, l.GetValue())
					}
				}
			}
		}
	})
}

// TestMetricsUnmatchedAndOddMethods: probes of random paths and methods
// share bounded series.
func TestMetricsUnmatchedAndOddMethods(t *testing.T) {
	s := newStack(t, "embedded", nil)
	for i, path := range []string{"/no/such/" + randomSuffix(t), "/v1/environments/dev/nothing-" + randomSuffix(t)} {
		method := []string{"GET", "BREW"}[i]
		req, err := http.NewRequest(method, s.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	fams := scrape(t, s.url)
	if got := sample(fams, metrics.RequestDuration, map[string]string{"route": metrics.Unmatched, "method": "GET", "status": "404"}); got != 1 {
		t.Errorf("unmatched GET counted %v times, want 1", got)
	}
	if got := sample(fams, metrics.RequestDuration, map[string]string{"route": metrics.Unmatched, "method": "other"}); got != 1 {
		t.Errorf("unmatched BREW counted %v times under method=other, want 1", got)
	}
	for _, m := range fams[metrics.RequestDuration].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), "nothing-") || strings.Contains(l.GetValue(), "/no/such") || l.GetValue() == "BREW" {
				t.Errorf("raw request data in label %s=%q", l.GetName(), l.GetValue())
			}
		}
	}
}

// TestMetricsSeparateListener: with server.metrics_addr, /metrics moves to
// its own listener and the main one answers 404 not_found there.
func TestMetricsSeparateListener(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr = "127.0.0.1:0"
	cfg.Server.MetricsAddr = "127.0.0.1:0"
	logs := &logBuffer{}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewJSONHandler(logs, nil)), server.WithSigners(signingtest.Signers(t)))
	if err != nil {
		t.Fatal(err)
	}
	main := serveInBackground(t, srv)
	logs.waitForLine(t, `"msg":"metrics listening"`)
	var metricsAddr string
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "metrics listening" {
			metricsAddr = rec.Addr
		}
	}
	if metricsAddr == "" {
		t.Fatalf("no metrics listener address in the log:\n%s", logs.String())
	}

	resp, body, err := rawRequest(t, http.MethodGet, main+"/metrics", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var eb api.ErrorBody
	if resp.StatusCode != http.StatusNotFound || json.Unmarshal(body, &eb) != nil || eb.Error.Code != registry.CodeNotFound.Name {
		t.Errorf("main listener GET /metrics = %d %s, want 404 not_found", resp.StatusCode, body)
	}
	if resp, _, err := rawRequest(t, http.MethodGet, main+"/healthz", "", nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("main listener /healthz: %v %v", resp, err)
	}
	fams := scrape(t, "http://"+metricsAddr)
	if got := sample(fams, metrics.RequestDuration, map[string]string{"route": metrics.Unmatched, "status": "404"}); got != 1 {
		t.Errorf("the main listener's 404 on /metrics counted %v times, want 1", got)
	}
	if resp, _, err := rawRequest(t, http.MethodGet, "http://"+metricsAddr+"/healthz", "", nil); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("metrics listener serves more than /metrics: /healthz = %v %v", resp, err)
	}
}

// sendWithRequestID sends a request carrying an X-Request-ID and returns
// the id the response carries.
func sendWithRequestID(t *testing.T, method, u, token, id, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header["X-Request-Id"] = []string{id}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Request-Id")
}

var generatedRequestID = regexp.MustCompile(`^[0-9a-f]{24}$`)

// TestRequestIDs: a well-formed incoming X-Request-ID is kept, a malformed
// one replaced; every response carries one, and the same id is on the log
// line and on the audit event.
func TestRequestIDs(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		s, logs := newLoggedStack(t, kind, slog.LevelInfo, nil, true)
		admin := s.key("dev", auth.RoleAdmin)
		reader := s.client(s.key("dev", auth.RoleReader))
		tests := []struct {
			name, id string
			keep     bool
		}{
			{"plain", "ci-run-42.step_7", true},
			{"longest", strings.Repeat("a", 128), true},
			{"too long", strings.Repeat("a", 129), false},
			{"space", "two words", false},
			{"quote", `x"y`, false},
			{"non-ASCII", "réquest", false},
			{"log field", "a level=ERROR", false},
			{"empty", "", false},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// A key creation (audited on success) and a bad token
				// (audited refusal) carry the same incoming id.
				keyName := "rid-" + strings.Repeat("k", i+1)
				status, got := sendWithRequestID(t, http.MethodPost, s.url+"/v1/environments/dev/keys", admin, tt.id, `{"name":"`+keyName+`","role":"reader"}`)
				if status != http.StatusCreated {
					t.Fatalf("create key = %d", status)
				}
				_, refusedID := sendWithRequestID(t, http.MethodGet, s.url+"/v1/environments/dev/artifacts", "sgk_bad", tt.id, "")
				for _, id := range []string{got, refusedID} {
					switch {
					case tt.keep && id != tt.id:
						t.Fatalf("X-Request-ID %q answered with %q, want it kept", tt.id, id)
					case !tt.keep && !generatedRequestID.MatchString(id):
						t.Fatalf("X-Request-ID %q answered with %q, want a fresh id", tt.id, id)
					}
				}
				if !tt.keep && got == refusedID {
					t.Fatalf("two requests were given the same fresh id %q", got)
				}
				want := map[string][]string{got: {audit.ActionKeyCreate}, refusedID: {audit.ActionAuthenticate}}
				if tt.keep {
					want = map[string][]string{tt.id: {audit.ActionAuthenticate, audit.ActionKeyCreate}}
				}
				for id, actions := range want {
					events, err := reader.Audit(context.Background(), "dev", url.Values{"requestId": {id}})
					if err != nil {
						t.Fatal(err)
					}
					var gotActions []string
					for _, ev := range events {
						if ev.RequestID != id {
							t.Errorf("audit query by request id %q returned an event of %q", id, ev.RequestID)
						}
						gotActions = append(gotActions, ev.Action)
					}
					slices.Sort(gotActions)
					if !slices.Equal(gotActions, actions) {
						t.Fatalf("audit events with request id %q: %v, want %v", id, gotActions, actions)
					}
					logs.waitForLine(t, `"msg":"request"`, `"request_id":"`+id+`"`)
				}
			})
		}
	})
}

// forEachKind is forEachStack for tests that build their own stack
// (newLoggedStack) rather than newStack's.
func forEachKind(t *testing.T, fn func(t *testing.T, kind string)) {
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) { fn(t, kind) })
	}
}

// TestSecretsNeverLogged runs a stack whose log is captured at debug level
// and whose signing keys are loaded with a password, exercises publish,
// download, promotion, refusals, key minting and bad credentials (API-key
// and OIDC-like bearer tokens), and asserts no token, key password or
// storage secret appears anywhere in the log.
func TestSecretsNeverLogged(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		const keyPassword = "kp-Obs3rvab1lity-never-logged"
		s, logs := newLoggedStack(t, kind, slog.LevelDebug, func(c *config.Config) {
			for i := range c.Environments {
				c.Environments[i].Signing.Password = keyPassword
			}
		}, false)
		ctx := context.Background()
		admin := s.key("dev", auth.RoleAdmin)
		pubToken, promoterToken := s.key("dev", auth.RolePublisher), s.key("staging", auth.RolePromoter)
		pub, promoter := s.client(pubToken), s.client(promoterToken)
		if _, err := push(t, pub, "dev", "secret-probe@1.0.0", "agent-config", map[string][]byte{"agent.yaml": []byte(validAgent)}); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Pull(ctx, "dev", "secret-probe", "1.0.0", t.TempDir()); err != nil {
			t.Fatal(err)
		}
		if _, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "secret-probe", Version: "1.0.0"}); err != nil {
			t.Fatal(err)
		}
		// Promoting with a publisher key, publishing into staging: refusals.
		_, err := pub.Promote(ctx, "staging", client.PromoteRequest{Name: "secret-probe", Version: "1.0.0"})
		wantAPIError(t, err, http.StatusForbidden, registry.CodeWrongEnvironment.Name)
		_, minted, err := s.client(admin).CreateKey(ctx, "dev", api.CreateKeyRequest{Name: "minted-reader", Role: "reader"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.client(minted).ListArtifacts(ctx, "dev"); err != nil {
			t.Fatal(err)
		}

		// Bad credentials: a forged API key, a revoked-looking one, an
		// OIDC-like JWT, and a token in another scheme.
		jwt := "eyJhbGciOiJSUzI1NiIsImtpZCI6Im9icyJ9.eyJpc3MiOiJodHRwczovL3Rva2VuLmFjdGlvbnMuZ2l0aHVidXNlcmNvbnRlbnQuY29tIiwic3ViIjoicmVwbzpvYnMvcHJvYmUifQ.c2lnbmF0dXJlLW9icy1wcm9iZQ"
		badTokens := []string{"sgk_obsForgedTokenValue0123456789", pubToken + "x", jwt}
		for _, bad := range badTokens {
			_, err := s.client(bad).ListArtifacts(ctx, "dev")
			wantAPIError(t, err, http.StatusUnauthorized, registry.CodeUnauthenticated.Name)
		}
		req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/whoami", nil)
		req.Header.Set("Authorization", "Basic "+jwt)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}

		secrets := append([]string{admin, pubToken, promoterToken, minted, keyPassword, "Bearer "}, badTokens...)
		// The JWT's parts are each secret enough on their own.
		secrets = append(secrets, strings.Split(jwt, ".")...)
		if sk := s.cfg.Storage.MinIO.SecretKey; sk != "" {
			secrets = append(secrets, sk)
		}
		log := logs.String()
		if !strings.Contains(log, `"msg":"request"`) {
			t.Fatalf("the log captured no request lines; the test is not looking at the server's log:\n%.2000s", log)
		}
		for _, secret := range secrets {
			if strings.Contains(log, secret) {
				t.Errorf("the log holds a secret (%.12s…)", secret)
			}
		}

		// A wrong password on restart is refused at start without echoing it.
		const wrong = "kp-wrong-Obs3rvab1lity-password"
		cfg := s.cfg
		cfg.Environments = append([]config.Environment(nil), cfg.Environments...)
		for i := range cfg.Environments {
			cfg.Environments[i].Signing.Password = wrong
		}
		var startLog logBuffer
		_, err = server.New(ctx, cfg, slog.New(slog.NewJSONHandler(&startLog, &slog.HandlerOptions{Level: slog.LevelDebug})))
		if err == nil {
			t.Fatal("server.New accepted a wrong key password")
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(startLog.String(), wrong) {
			t.Errorf("a wrong key password is echoed: %v / %s", err, startLog.String())
		}
	})
}

// TestOIDCTokensNeverLogged: with OIDC trusted publishing configured, a
// CI job's token (accepted, and refused for its audience, its claims or its
// age) appears nowhere in the log at debug level, in whole or in part.
func TestOIDCTokensNeverLogged(t *testing.T) {
	is := oidctest.NewIssuer(t, time.Now)
	s, logs := newLoggedStack(t, "embedded", slog.LevelDebug, func(c *config.Config) {
		c.Auth = config.Auth{OIDC: config.OIDC{Issuers: []config.OIDCIssuer{{Issuer: is.URL, Audience: "stagegate-dev",
			Rules: []config.OIDCRule{{Claims: map[string]string{"repository": "obs/probe"}, Environment: "dev", Role: "publisher", Identity: "github:obs/probe"}}}}}}
	}, true)
	ctx := context.Background()
	valid := is.Mint("stagegate-dev", map[string]any{"repository": "obs/probe"})
	if _, err := push(t, s.client(valid), "dev", "oidc-probe@1.0.0", "generic", map[string][]byte{"a.txt": []byte("a")}); err != nil {
		t.Fatalf("publishing with an OIDC token: %v", err)
	}
	expired := is.Claims("stagegate-dev", map[string]any{"repository": "obs/probe"})
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	refused := []string{
		is.Mint("another-audience", map[string]any{"repository": "obs/probe"}),
		is.Mint("stagegate-dev", map[string]any{"repository": "evil/fork"}),
		is.Sign(expired),
	}
	for _, tok := range refused {
		if _, err := s.client(tok).ListArtifacts(ctx, "dev"); err == nil {
			t.Fatal("a refused OIDC token was accepted")
		}
	}
	log := logs.String()
	if !strings.Contains(log, `"msg":"request"`) {
		t.Fatalf("no request lines captured:\n%.2000s", log)
	}
	for _, tok := range append(refused, valid) {
		parts := strings.Split(tok, ".")
		for _, secret := range []string{tok, parts[1], parts[2]} {
			if strings.Contains(log, secret) {
				t.Errorf("the log holds an OIDC token or part of one (%.12s…)", secret)
			}
		}
	}
}
