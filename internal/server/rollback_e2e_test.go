package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/metrics"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/rollback"
)

// permissiveStaging promotes any kind without evidence: these tests are
// about rollbacks, not about the promotion gates.
const permissiveStaging = "environment: staging\nchecks:\n  - name: promotion-order\n  - name: digest-integrity\n"

// stagingHookSecret authenticates staging's Alertmanager hook in these tests.
const stagingHookSecret = "e2e-staging-alertmanager-0123456789"

// rollbackStack is a stack whose staging promotes without evidence and
// accepts Alertmanager notifications; opts may set a clock.
func rollbackStack(t *testing.T, kind string, opts ...server.Option) *stack {
	t.Helper()
	policy := filepath.Join(t.TempDir(), "staging.yaml")
	if err := os.WriteFile(policy, []byte(permissiveStaging), 0o600); err != nil {
		t.Fatal(err)
	}
	return newStack(t, kind, func(c *config.Config) {
		c.Environments[1].Policy = policy
		c.Environments[1].Hooks.AlertmanagerSecret = stagingHookSecret
	}, opts...)
}

// modelFiles are the files of fraud-detector@v: distinct per version.
func modelFiles(v string) map[string][]byte {
	return map[string][]byte{"model.bin": []byte("weights of " + v), "config.json": []byte(`{"version":"` + v + `"}`)}
}

// overwriteBlob replaces the stored bytes of a blob of env behind the
// service's back: the file of the filesystem driver, or the MinIO object.
func overwriteBlob(t *testing.T, s *stack, env string, dgst string, data []byte) {
	t.Helper()
	hexPart := strings.TrimPrefix(dgst, "sha256:")
	if s.cfg.Storage.Driver == "minio" {
		mc, err := miniogo.New(s.cfg.Storage.MinIO.Endpoint, &miniogo.Options{
			Creds: credentials.NewStaticV4(s.cfg.Storage.MinIO.AccessKey, s.cfg.Storage.MinIO.SecretKey, ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		bucket := s.cfg.BucketFor(s.cfg.Environments[slicesIndex(s.cfg.EnvironmentNames(), env)])
		if _, err := mc.PutObject(context.Background(), bucket, "blobs/sha256/"+hexPart, bytes.NewReader(data), int64(len(data)), miniogo.PutObjectOptions{}); err != nil {
			t.Fatalf("overwrite MinIO object: %v", err)
		}
		return
	}
	path := filepath.Join(s.cfg.BlobDir(env), "blobs", "sha256", hexPart)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestRollbackEndToEnd(t *testing.T) {
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
			s := rollbackStack(t, kind, server.WithClock(clock.Now))
			ctx := context.Background()
			pub := s.client(s.key("dev", auth.RolePublisher))
			promoter := s.client(s.key("staging", auth.RolePromoter))
			readerToken := s.key("staging", auth.RoleReader)
			reader := s.client(readerToken)
			digests := map[string]string{}
			for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
				if _, err := push(t, pub, "dev", "fraud-detector@"+v, "generic", modelFiles(v)); err != nil {
					t.Fatal(err)
				}
				digests[v] = registry.DigestOf(modelFiles(v)["model.bin"]).String()
			}
			var times []time.Time // of releases 1, 2, 3
			for _, v := range []string{"1.0.0", "1.1.0"} {
				clock.Advance(time.Minute)
				if _, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "fraud-detector", Version: v, Reason: "green"}); err != nil {
					t.Fatalf("promote %s: %v", v, err)
				}
				times = append(times, clock.Now())
			}

			// Refusals, each audited.
			_, err := promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "fraud-detector", Version: "1.2.0", Reason: "r"})
			wantAPIError(t, err, http.StatusConflict, registry.CodeNotEligible.Name)
			var ne client.NotEligible
			if err := json.Unmarshal(err.(*client.APIError).Details, &ne); err != nil || fmt.Sprint(ne.Eligible) != "[1.0.0]" || ne.Current != "1.1.0" {
				t.Fatalf("not_eligible details %+v (%v), want eligible [1.0.0], current 1.1.0", ne, err)
			}
			_, err = promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "fraud-detector"})
			wantAPIError(t, err, http.StatusBadRequest, registry.CodeInvalidRequest.Name)
			_, err = reader.Rollback(ctx, "staging", client.RollbackRequest{Name: "fraud-detector", Reason: "r"})
			wantAPIError(t, err, http.StatusForbidden, registry.CodeForbidden.Name)
			_, err = promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "fraud-detector", Reason: "r", Force: true})
			wantAPIError(t, err, http.StatusForbidden, registry.CodeForbidden.Name)
			dry, err := promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "fraud-detector", Reason: "r", DryRun: true})
			if err != nil || dry.Outcome != api.RollbackDryRun || dry.Version != "1.0.0" || dry.Release != nil || dry.GateRun == nil {
				t.Fatalf("dry run: %+v %v", dry, err)
			}

			// The default target: the release before the current one.
			clock.Advance(time.Minute)
			res, err := promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "fraud-detector", Reason: "error rate up"})
			if err != nil {
				t.Fatal(err)
			}
			times = append(times, clock.Now())
			if res.Outcome != api.RollbackDone || res.Release.Version != "1.0.0" || res.Release.Number != 3 || res.Previous.Version != "1.1.0" ||
				res.Release.Action != registry.ReleaseRollback || res.Release.GateRunID != res.GateRun.ID || !res.GateRun.Passed {
				t.Fatalf("rollback: %+v release %+v", res, res.Release)
			}
			again, err := promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "fraud-detector", Version: "1.0.0", Reason: "retry"})
			if err != nil || again.Outcome != api.RollbackUnchanged || again.Release.ID != res.Release.ID {
				t.Fatalf("rollback to the current version: %+v %v", again, err)
			}

			// The rollback's gates are attested by staging's key.
			pem, _, err := reader.PublicKey(ctx, "staging")
			if err != nil {
				t.Fatal(err)
			}
			verifier, err := signing.LoadVerifier(pem)
			if err != nil {
				t.Fatal(err)
			}
			envelope, err := reader.RollbackAttestation(ctx, "staging", "fraud-detector", "1.0.0", res.GateRun.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := verifier.VerifyAttestation(envelope, res.Release.ManifestDigest.String(), rollback.PredicateType); err != nil {
				t.Fatalf("rollback attestation: %v", err)
			}
			if bin := os.Getenv("STAGEGATE_TEST_COSIGN"); bin != "" {
				manifest, err := reader.Manifest(ctx, "staging", "fraud-detector", "1.0.0")
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				for name, data := range map[string][]byte{"manifest.json": manifest, "att.json": envelope, "staging.pub": pem} {
					if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				msg, err := runCosign(t, bin, dir, "", "verify-blob-attestation", "--key", "staging.pub", "--signature", "att.json",
					"--type", rollback.PredicateType, "--insecure-ignore-tlog=true", "manifest.json")
				if err != nil || !strings.Contains(msg, "Verified OK") {
					t.Fatalf("cosign verify-blob-attestation: %v\n%s", err, msg)
				}
			}

			// History: three releases, newest first, numbered per name.
			page, err := reader.History(ctx, "staging", "fraud-detector", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range page.Releases {
				got = append(got, fmt.Sprintf("%d:%s:%s", r.Number, r.Action, r.Version))
			}
			if fmt.Sprint(got) != "[3:rollback:1.0.0 2:promotion:1.1.0 1:promotion:1.0.0]" {
				t.Fatalf("history %v", got)
			}
			if p, err := reader.History(ctx, "staging", "fraud-detector", 1, 3); err != nil || len(p.Releases) != 1 || p.Releases[0].Number != 2 || p.NextBefore != 2 {
				t.Fatalf("history page before 3: %+v %v", p, err)
			}

			// What staging served at each instant.
			at := []struct {
				name string
				at   time.Time
				want string // version; "" for nothing
			}{
				{"before the first release", times[0].Add(-time.Second), ""},
				{"at the first release", times[0], "1.0.0"},
				{"between the promotions", times[1].Add(-time.Second), "1.0.0"},
				{"after the second promotion", times[1].Add(time.Second), "1.1.0"},
				{"after the rollback", times[2].Add(time.Second), "1.0.0"},
				{"in the future", times[2].Add(365 * 24 * time.Hour), "1.0.0"},
			}
			for _, tt := range at {
				st, err := reader.ReleasesAt(ctx, "staging", tt.at, "")
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				switch {
				case tt.want == "" && len(st.Releases) != 0:
					t.Errorf("%s: %+v, want nothing", tt.name, st.Releases)
				case tt.want != "" && (len(st.Releases) != 1 || st.Releases[0].Version != tt.want || st.Releases[0].GateRunID == "" || st.Releases[0].Actor == ""):
					t.Errorf("%s: %+v, want %s with its actor and gate run", tt.name, st.Releases, tt.want)
				}
				if st.At.After(clock.Now()) {
					t.Errorf("%s: answered for %s, after now", tt.name, st.At)
				}
			}
			resp, body, err := rawRequest(t, http.MethodGet, s.url+"/v1/environments/staging/releases?at=yesterday", readerToken, nil)
			if err != nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), registry.CodeInvalidRequest.Name) {
				t.Errorf("at=yesterday: %v %s", err, body)
			}

			// An admin forces a rollback past the freeze windows: the release
			// says so, as the audit event does.
			clock.Advance(time.Minute)
			admin := s.client(s.key("staging", auth.RoleAdmin))
			forced, err := admin.Rollback(ctx, "staging", client.RollbackRequest{Name: "fraud-detector", Version: "1.1.0", Reason: "hotfix", Force: true})
			if err != nil || forced.Outcome != api.RollbackDone || forced.Release.Number != 4 || !forced.Release.Forced {
				t.Fatalf("forced rollback: %+v %v", forced, err)
			}
			if p, err := reader.History(ctx, "staging", "fraud-detector", 0, 0); err != nil || !p.Releases[0].Forced || p.Releases[1].Forced {
				t.Fatalf("history after a forced rollback: %+v %v", p, err)
			}
			resp, body, err = rawRequest(t, http.MethodGet, s.url+"/v1/environments/staging/artifacts/fraud-detector/-/releases?limit=2", readerToken, nil)
			if err != nil || resp.StatusCode != http.StatusOK || strings.Count(string(body), `"forced":true`) != 1 {
				t.Errorf("release JSON: %v %s, want one \"forced\":true", err, body)
			}

			// A blob overwritten in storage: the rollback to that version fails
			// its integrity gate, naming the file.
			overwriteBlob(t, s, "staging", digests["1.0.0"], []byte("not the weights that were released"))
			_, err = promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "fraud-detector", Version: "1.0.0", Reason: "r"})
			gf := gateFailure(t, err)
			failed := failedChecks(gf.Report)
			if reason, ok := failed["digest-integrity"]; !ok || len(failed) != 1 || !strings.Contains(reason, "model.bin") {
				t.Fatalf("refusal of the tampered version: %v", failed)
			}

			// The audit trail has every step, refusals included.
			events, err := reader.Audit(ctx, "staging", url.Values{"limit": {"100"}})
			if err != nil {
				t.Fatal(err)
			}
			var steps []string
			for i := len(events) - 1; i >= 0; i-- {
				e := events[i]
				if strings.HasPrefix(e.Action, "artifact.rollback") || e.Action == "artifact.promote" || e.ErrorCode == registry.CodeForbidden.Name {
					steps = append(steps, e.Action+":"+string(e.Outcome)+":"+e.ErrorCode+e.Details["forced"])
				}
			}
			want := []string{"artifact.promote:success:", "artifact.promote:success:", "artifact.rollback:denied:not_eligible",
				"artifact.rollback:denied:invalid_request", "authorize:denied:forbidden", "artifact.rollback:denied:forbidden",
				"artifact.rollback.dry_run:success:", "artifact.rollback:success:", "artifact.rollback:success:",
				"artifact.rollback:success:true", "artifact.rollback:denied:gate_failed"}
			if fmt.Sprint(steps) != fmt.Sprint(want) {
				t.Errorf("audit steps\n got %v\nwant %v", steps, want)
			}
			// The refusal names the gate run that refused it, not its report.
			if ev := events[0]; ev.ErrorCode != registry.CodeGateFailed.Name || ev.Details["gateRunId"] != gf.GateRunID || ev.Details["report"] != "" {
				t.Errorf("refused rollback's audit event %s %v, want gateRunId %s and no report", ev.ErrorCode, ev.Details, gf.GateRunID)
			}

			// The metrics count rollbacks and their gate checks as they do
			// promotions': four gate runs (the dry run, two rollbacks, the
			// refused one), the idempotent repeat none.
			fams := scrape(t, s.url)
			for _, m := range []struct {
				name, family string
				labels       map[string]string
				want         float64
			}{
				{"rollbacks", metrics.Actions, map[string]string{"environment": "staging", "action": rollback.ActionRollback, "outcome": "success"}, 3},
				{"refused rollbacks", metrics.Actions, map[string]string{"environment": "staging", "action": rollback.ActionRollback, "outcome": "denied", "code": registry.CodeGateFailed.Name}, 1},
				{"signature checks", metrics.GateCheckDuration, map[string]string{"environment": "staging", "check": "environment-signature", "result": "passed"}, 4},
				{"failed integrity checks", metrics.GateCheckDuration, map[string]string{"environment": "staging", "check": "digest-integrity", "result": "failed"}, 1},
			} {
				if got := sample(fams, m.family, m.labels); got != m.want {
					t.Errorf("%s: %s%v = %v, want %v", m.name, m.family, m.labels, got, m.want)
				}
			}
		})
	}
}

// postHook sends a notification to env's Alertmanager hook.
func postHook(t *testing.T, s *stack, env, secret string, body []byte) (int, api.HookResponse, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+"/v1/environments/"+env+"/hooks/alertmanager", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out api.HookResponse
	var eb api.ErrorBody
	data := new(bytes.Buffer)
	_, _ = data.ReadFrom(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data.Bytes(), &out); err != nil {
			t.Fatalf("hook answer %s: %v", data, err)
		}
		return resp.StatusCode, out, ""
	}
	_ = json.Unmarshal(data.Bytes(), &eb)
	return resp.StatusCode, out, eb.Error.Code
}

func TestAlertmanagerHook(t *testing.T) {
	payload, err := os.ReadFile("testdata/alertmanager/firing.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
			s := rollbackStack(t, kind, server.WithClock(clock.Now))
			ctx := context.Background()
			pub := s.client(s.key("dev", auth.RolePublisher))
			promoter := s.client(s.key("staging", auth.RolePromoter))
			for _, v := range []string{"1.0.0", "1.1.0"} {
				if _, err := push(t, pub, "dev", "fraud-detector@"+v, "generic", modelFiles(v)); err != nil {
					t.Fatal(err)
				}
				clock.Advance(time.Minute)
				if _, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "fraud-detector", Version: v}); err != nil {
					t.Fatal(err)
				}
			}
			// The alert started at 09:10, after release 2 (09:02).
			clock.Advance(10 * time.Minute)

			// Only the hook secret of that environment opens the hook.
			for name, secret := range map[string]string{"no secret": "", "wrong secret": "not-the-secret-at-all", "an API key": s.key("staging", auth.RoleAdmin)} {
				if status, _, code := postHook(t, s, "staging", secret, payload); status != http.StatusUnauthorized || code != registry.CodeUnauthenticated.Name {
					t.Errorf("%s: %d %s, want 401 unauthenticated", name, status, code)
				}
			}
			if status, _, _ := postHook(t, s, "prod", stagingHookSecret, payload); status != http.StatusUnauthorized {
				t.Errorf("staging's secret on prod's hook (which has none): %d, want 401", status)
			}
			if status, _, code := postHook(t, s, "staging", stagingHookSecret, []byte(`{"version":"3"}`)); status != http.StatusBadRequest || code != registry.CodeInvalidRequest.Name {
				t.Errorf("version 3 payload: %d %s", status, code)
			}

			status, out, _ := postHook(t, s, "staging", stagingHookSecret, payload)
			if status != http.StatusOK || len(out.Alerts) != 3 {
				t.Fatalf("hook: %d %+v", status, out)
			}
			first := out.Alerts[0]
			if first.Outcome != "rolled-back" || first.Release == nil || first.Release.Version != "1.0.0" || first.Release.Number != 3 ||
				first.Release.Actor != "alertmanager" || first.Release.Reason != "FraudDetectorErrorRate: 5xx rate above 5% for 10 minutes" ||
				out.Alerts[1].Outcome != "ignored" || out.Alerts[2].Outcome != "ignored" {
				t.Fatalf("hook outcomes: %+v", out.Alerts)
			}

			// Alertmanager repeats the firing alert: no second rollback.
			clock.Advance(4 * time.Hour)
			status, out, _ = postHook(t, s, "staging", stagingHookSecret, payload)
			if status != http.StatusOK || out.Alerts[0].Outcome != "already-rolled-back" {
				t.Fatalf("repeat: %d %+v", status, out.Alerts)
			}
			releases, err := promoter.Releases(ctx, "staging", "fraud-detector")
			if err != nil || len(releases) != 3 || releases[0].TriggeredBy != "alertmanager:a1b2c3d4e5f60718" {
				t.Fatalf("releases after a repeated alert: %+v %v", releases, err)
			}

			events, err := promoter.Audit(ctx, "staging", url.Values{"actor": {"alertmanager"}})
			if err != nil {
				t.Fatal(err)
			}
			var steps []string
			for i := len(events) - 1; i >= 0; i-- {
				steps = append(steps, events[i].Action+":"+string(events[i].Outcome)+":"+events[i].Details["outcome"])
			}
			want := "[hook.alertmanager:denied: artifact.rollback:success: hook.alertmanager:success: artifact.rollback:success:already-rolled-back hook.alertmanager:success:]"
			if fmt.Sprint(steps) != want {
				t.Errorf("audit of the hook\n got %v\nwant %s", steps, want)
			}
			denied, err := promoter.Audit(ctx, "staging", url.Values{"action": {audit.ActionAuthenticate}})
			if err != nil || len(denied) < 3 {
				t.Errorf("refused hook calls are not audited: %+v %v", denied, err)
			}

			// Counted as the manual rollbacks are: the rollback and the
			// repeat, and the one gate run.
			fams := scrape(t, s.url)
			rollbacks := map[string]string{"environment": "staging", "action": rollback.ActionRollback, "outcome": "success"}
			if got := sample(fams, metrics.Actions, rollbacks); got != 2 {
				t.Errorf("alert rollbacks counted %v, want 2", got)
			}
			signature := map[string]string{"environment": "staging", "check": "environment-signature", "result": "passed"}
			if got := sample(fams, metrics.GateCheckDuration, signature); got != 1 {
				t.Errorf("alert rollback gate checks counted %v, want 1", got)
			}
		})
	}
}

// TestRollbackRacesPromotion: rollbacks and promotions of one name sent at
// once form one chain on every stack: each release number has one winner,
// each release supersedes the one before it, and every request either wins
// its slot, finds its version current, or is told the release changed —
// never an internal error.
func TestRollbackRacesPromotion(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		pub := s.client(s.key("dev", auth.RolePublisher))
		promoter := s.client(s.key("staging", auth.RolePromoter))
		const n = 12
		versions := []string{"1.0.0", "1.1.0"}
		for i := range n / 3 {
			versions = append(versions, fmt.Sprintf("2.%d.0", i))
		}
		for _, v := range versions {
			if _, err := push(t, pub, "dev", "support-agent@"+v, "agent-config",
				map[string][]byte{"agent.json": []byte(`{"model":"gpt-x","system_prompt":"Be brief, ` + v + `."}`)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range versions[:2] {
			if _, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "support-agent", Version: v}); err != nil {
				t.Fatal(err)
			}
		}
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				switch i % 3 {
				case 0:
					_, errs[i] = promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "support-agent", Version: versions[2+i/3]})
				case 1:
					_, errs[i] = promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "support-agent", Version: versions[i%2], Reason: "race"})
				default:
					_, errs[i] = promoter.Rollback(ctx, "staging", client.RollbackRequest{Name: "support-agent", Reason: "race"})
				}
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			var ae *client.APIError
			switch {
			case err == nil:
			case errors.As(err, &ae) && ae.Code == registry.CodeReleaseChanged.Name:
			default:
				t.Errorf("request %d: %v; want success or release_changed", i, err)
			}
		}
		page, err := promoter.History(ctx, "staging", "support-agent", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		list := page.Releases
		for i, r := range list {
			wantPrevious := int64(0)
			if i+1 < len(list) {
				wantPrevious = list[i+1].ID
				if r.Version == list[i+1].Version {
					t.Errorf("releases %d and %d both serve %s", r.Number, list[i+1].Number, r.Version)
				}
			}
			if r.Number != int64(len(list)-i) || r.PreviousID != wantPrevious {
				t.Errorf("release %d (%s %s): number %d previous %d; want number %d previous %d",
					r.ID, r.Action, r.Version, r.Number, r.PreviousID, len(list)-i, wantPrevious)
			}
		}
		if len(list) < 2+n/3 {
			t.Errorf("%d releases, want at least the %d promotions", len(list), 2+n/3)
		}
	})
}
