package rollback_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/internal/signing/signingtest"
	"github.com/stagegate/stagegate/promotion"
	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/rollback"
)

// stagingPolicy promotes without evidence and freezes the turn of the year.
const stagingPolicy = `environment: staging
checks:
  - name: promotion-order
  - name: digest-integrity
  - name: freeze-windows
    params:
      windows:
        - {name: year-end, start: "2026-12-20", end: "2027-01-04"}
`

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}
func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// fixture is dev -> staging -> prod over real local storage and SQLite,
// with model@1.0.0, 1.1.0 and 1.2.0 published in dev.
type fixture struct {
	t      *testing.T
	clock  *clock
	meta   *metadata.Store
	blobs  map[string]registry.Blobs
	dirs   map[string]string
	policy *gates.Policy
	svc    *rollback.Service
	promo  *promotion.Service
	envs   *environment.List
}

var files = map[string][]byte{"1.0.0": []byte("weights one"), "1.1.0": []byte("weights two"), "1.2.0": []byte("weights three")}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, clock: &clock{now: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)},
		blobs: map[string]registry.Blobs{}, dirs: map[string]string{}}
	var err error
	if f.meta, err = metadata.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "meta.db"), []string{"dev", "staging", "prod"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.meta.Close() })
	if f.policy, err = gates.LoadPolicy([]byte(stagingPolicy)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dev", "staging", "prod"} {
		f.dirs[name] = filepath.Join(t.TempDir(), name)
		d, err := filesystem.New(f.dirs[name])
		if err != nil {
			t.Fatal(err)
		}
		f.blobs[name] = blob.NewStore(d)
	}
	signers := signingtest.Signers(t)
	f.envs = f.build(signers["staging"], keyring(t, signers["staging"]))
	f.svc = rollback.New(f.clock.Now)
	f.promo = promotion.New(f.clock.Now)

	dev := f.envs.First()
	reg := registry.NewService(registry.Limits{}, f.clock.Now)
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		data := files[v]
		if _, err := dev.Blobs().PutBlob(ctx, registry.DigestOf(data), bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Publish(ctx, dev, audit.Actor{Name: "ci"}, registry.PublishRequest{Name: "model", Version: v, Kind: "generic",
			Files: []registry.File{{Path: "w.bin", Digest: registry.DigestOf(data), Size: int64(len(data))}}}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func keyring(t *testing.T, signers ...*signing.Signer) *signing.Keyring {
	t.Helper()
	var pems [][]byte
	for _, s := range signers {
		pems = append(pems, s.PublicKeyPEM())
	}
	k, err := signing.NewKeyring(pems...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// build wires the environments over f's stores, with staging's keys given
// (key rotation rebuilds them, as a restart with new configuration does).
func (f *fixture) build(stagingSigner *signing.Signer, stagingVerifier *signing.Keyring) *environment.List {
	f.t.Helper()
	signers := signingtest.Signers(f.t)
	var specs []environment.Spec
	for _, name := range []string{"dev", "staging", "prod"} {
		handle, err := f.meta.Env(name)
		if err != nil {
			f.t.Fatal(err)
		}
		spec := environment.Spec{Name: name, Blobs: f.blobs[name], Metadata: handle, Signer: signers[name], Verifier: keyring(f.t, signers[name])}
		switch name {
		case "staging":
			spec.Policy, spec.Signer, spec.Verifier = f.policy, stagingSigner, stagingVerifier
		case "prod":
			if spec.Policy, err = gates.DefaultPolicy("prod"); err != nil {
				f.t.Fatal(err)
			}
		}
		specs = append(specs, spec)
	}
	envs, err := environment.New(specs)
	if err != nil {
		f.t.Fatal(err)
	}
	return envs
}

func (f *fixture) env(name string) *environment.Environment {
	e, ok := f.envs.Bind(name)
	if !ok {
		f.t.Fatalf("no environment %q", name)
	}
	return e
}

// promote promotes model@v into staging, a minute after the last step.
func (f *fixture) promote(v string) registry.Release {
	f.t.Helper()
	f.clock.Advance(time.Minute)
	res, err := f.promo.Promote(context.Background(), f.env("staging"), audit.Actor{Name: "promoter"}, promotion.Request{Name: "model", Version: v})
	if err != nil || res.Release == nil {
		f.t.Fatalf("promote %s: %+v %v", v, res, err)
	}
	return *res.Release
}

var oncall = audit.Actor{Name: "oncall", CredentialID: "key_1", Owner: "oncall@example.test"}

func TestRollbackDefaultTarget(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	staging := f.env("staging")
	r1, r2 := f.promote("1.0.0"), f.promote("1.1.0")
	f.clock.Advance(time.Minute)

	dry, err := f.svc.Rollback(ctx, staging, oncall, rollback.Request{Name: "model", Reason: "error rate", DryRun: true})
	if err != nil || dry.Outcome != rollback.DryRun || dry.Release != nil || !dry.GateRun.DryRun || !dry.Report.Passed {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	res, err := f.svc.Rollback(ctx, staging, oncall, rollback.Request{Name: "model", Reason: "error rate"})
	if err != nil {
		t.Fatal(err)
	}
	rel := res.Release
	if res.Outcome != rollback.RolledBack || !res.Audited || rel.Version != "1.0.0" || rel.Number != 3 || rel.PreviousID != r2.ID ||
		rel.Action != registry.ReleaseRollback || rel.GateRunID != res.GateRun.ID || rel.Reason != "error rate" || rel.Actor != "oncall" ||
		rel.ManifestDigest != r1.ManifestDigest || res.Previous.ID != r2.ID {
		t.Fatalf("rollback: %+v, release %+v", res, rel)
	}
	var checks []string
	for _, c := range res.Report.Results {
		checks = append(checks, c.Check+"="+string(c.Status))
	}
	if want := "[digest-integrity=passed environment-signature=passed freeze-windows=passed]"; fmtList(checks) != want {
		t.Errorf("gate results %v, want %s", checks, want)
	}

	// The attestation names the gate run and verifies with staging's key.
	envelope, err := f.svc.Attestation(ctx, staging, "model", "1.0.0", res.GateRun.ID)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := signingtest.Signers(t)["staging"].Verifier().VerifyAttestation(envelope, rel.ManifestDigest.String(), rollback.PredicateType)
	if err != nil {
		t.Fatalf("rollback attestation: %v", err)
	}
	var p struct {
		GateRunID   string `json:"gateRunId"`
		Action      string `json:"action"`
		FromVersion string `json:"fromVersion"`
		Passed      bool   `json:"passed"`
	}
	if err := json.Unmarshal(pred, &p); err != nil || p.GateRunID != res.GateRun.ID || p.Action != "rollback" || p.FromVersion != "1.1.0" || !p.Passed {
		t.Errorf("predicate %s (%v)", pred, err)
	}

	// Again: 1.0.0 is current, so nothing is appended.
	again, err := f.svc.Rollback(ctx, staging, oncall, rollback.Request{Name: "model", Version: "1.0.0", Reason: "again"})
	if err != nil || again.Outcome != rollback.Unchanged || again.Release.ID != rel.ID || again.GateRun != nil || again.Audited {
		t.Fatalf("rollback to the current version: %+v %v", again, err)
	}
	// The default target now is the release before the current one: 1.1.0.
	back, err := f.svc.Rollback(ctx, staging, oncall, rollback.Request{Name: "model", Reason: "false alarm"})
	if err != nil || back.Release.Version != "1.1.0" || back.Release.Number != 4 {
		t.Fatalf("rollback of the rollback: %+v %v", back, err)
	}
	events, err := staging.Metadata().QueryAudit(ctx, audit.Filter{Action: rollback.ActionRollback})
	if err != nil || len(events) != 2 || events[1].Details["from"] != "1.1.0" || events[1].Details["identity"] != "oncall@example.test" {
		t.Fatalf("audit: %+v %v", events, err)
	}
}

func fmtList(s []string) string { return "[" + strings.Join(s, " ") + "]" }

func TestRollbackRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	staging := f.env("staging")
	r1 := f.promote("1.0.0")
	f.promote("1.1.0")
	long := string(bytes.Repeat([]byte("x"), 1025))
	tests := []struct {
		name     string
		env      string
		req      rollback.Request
		code     string
		eligible string // not_eligible details
	}{
		{"bad name", "staging", rollback.Request{Name: "Model!", Reason: "r"}, registry.CodeInvalidName.Name, ""},
		{"bad version", "staging", rollback.Request{Name: "model", Version: "latest", Reason: "r"}, registry.CodeInvalidVersion.Name, ""},
		{"no reason", "staging", rollback.Request{Name: "model", Reason: "  "}, registry.CodeInvalidRequest.Name, ""},
		{"long reason", "staging", rollback.Request{Name: "model", Reason: long}, registry.CodeInvalidRequest.Name, ""},
		{"force without admin", "staging", rollback.Request{Name: "model", Reason: "r", Force: true}, registry.CodeForbidden.Name, ""},
		{"never released name", "staging", rollback.Request{Name: "other", Reason: "r"}, registry.CodeNotEligible.Name, "[]"},
		{"version never released here", "staging", rollback.Request{Name: "model", Version: "1.2.0", Reason: "r"}, registry.CodeNotEligible.Name, "[1.0.0]"},
		{"version that exists nowhere", "staging", rollback.Request{Name: "model", Version: "9.9.9", Reason: "r"}, registry.CodeNotEligible.Name, "[1.0.0]"},
		{"nothing released in the first environment", "dev", rollback.Request{Name: "model", Reason: "r"}, registry.CodeNotEligible.Name, "[]"},
		{"judged release no longer current", "staging", rollback.Request{Name: "model", Reason: "r", IfCurrent: r1.ID}, registry.CodeReleaseChanged.Name, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Rollback(ctx, f.env(tt.env), oncall, tt.req)
			e := registry.AsError(err)
			if e.Code != tt.code {
				t.Fatalf("code %q (%v), want %q", e.Code, err, tt.code)
			}
			if tt.eligible != "" {
				d, ok := e.Details.(rollback.NotEligibleDetails)
				if !ok || fmtList(d.Eligible) != tt.eligible {
					t.Errorf("details %+v, want eligible %s", e.Details, tt.eligible)
				}
			}
		})
	}
	// A name with one release has nothing before it.
	f.clock.Advance(time.Minute)
	if _, err := f.promo.Promote(ctx, staging, audit.Actor{Name: "p"}, promotion.Request{Name: "model", Version: "1.2.0"}); err != nil {
		t.Fatal(err)
	}
	if list, _ := staging.Metadata().ListReleases(ctx, "model"); len(list) != 3 {
		t.Fatalf("%d releases after refusals and a promotion, want 3", len(list))
	}
}

func TestRollbackFirstReleaseHasNoTarget(t *testing.T) {
	f := newFixture(t)
	f.promote("1.0.0")
	_, err := f.svc.Rollback(context.Background(), f.env("staging"), oncall, rollback.Request{Name: "model", Reason: "r"})
	if e := registry.AsError(err); e.Code != registry.CodeNotEligible.Name || e.Details.(rollback.NotEligibleDetails).Current != "1.0.0" {
		t.Fatalf("default rollback of a first release: %v", err)
	}
}

// TestRollbackGates: each gate of the rollback set refuses with a report.
func TestRollbackGates(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fixture)
		req     rollback.Request
		failing string // the blocking check; "" when the rollback passes
		reason  string // in the failing check's reason
	}{
		{"freeze window", func(f *fixture) { f.clock.Set(time.Date(2026, 12, 24, 10, 0, 0, 0, time.UTC)) },
			rollback.Request{}, "freeze-windows", "year-end"},
		{"freeze window forced by an admin", func(f *fixture) { f.clock.Set(time.Date(2026, 12, 24, 10, 0, 0, 0, time.UTC)) },
			rollback.Request{Force: true, MayForce: true}, "", ""},
		{"blob overwritten in storage", func(f *fixture) {
			overwrite(f.t, f.dirs["staging"], registry.DigestOf(files["1.0.0"]), []byte("tampered!!!"))
		}, rollback.Request{}, "digest-integrity", "w.bin"},
		{"signature by an unknown key", func(f *fixture) {
			// staging now trusts only a key that never signed anything.
			other := signingtest.Signers(f.t)["prod"]
			f.envs = f.build(other, keyring(f.t, other))
		}, rollback.Request{}, "environment-signature", "none made by staging's current or rotated keys"},
		{"signature by a rotated key", func(f *fixture) {
			// A new signing key; the old one is listed for verification.
			old, next := signingtest.Signers(f.t)["staging"], signingtest.Signers(f.t)["prod"]
			f.envs = f.build(next, keyring(f.t, next, old))
		}, rollback.Request{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.promote("1.0.0")
			f.promote("1.1.0")
			tt.setup(f)
			req := tt.req
			req.Name, req.Reason = "model", "error rate"
			res, err := f.svc.Rollback(context.Background(), f.env("staging"), oncall, req)
			if tt.failing == "" {
				if err != nil || res.Outcome != rollback.RolledBack {
					t.Fatalf("rollback: %+v %v", res, err)
				}
				if res.Release.Forced != req.Force {
					t.Errorf("release forced = %v, want %v", res.Release.Forced, req.Force)
				}
				if req.Force {
					ev, _ := f.env("staging").Metadata().QueryAudit(context.Background(), audit.Filter{Action: rollback.ActionRollback})
					if len(ev) != 1 || ev[0].Details["forced"] != "true" {
						t.Errorf("a forced rollback is not recorded as forced: %+v", ev)
					}
				}
				return
			}
			e := registry.AsError(err)
			if e.Code != registry.CodeGateFailed.Name || res.GateRun == nil || res.GateRun.Passed {
				t.Fatalf("want gate_failed with a stored gate run, got %+v %v", res, err)
			}
			blocking := res.Report.Failures()
			if len(blocking) != 1 || blocking[0].Check != tt.failing || !strings.Contains(blocking[0].Reason, tt.reason) {
				t.Fatalf("blocking checks %+v, want only %s mentioning %q", blocking, tt.failing, tt.reason)
			}
			if list, _ := f.env("staging").Metadata().ListReleases(context.Background(), "model"); len(list) != 2 {
				t.Errorf("a refused rollback appended a release: %d releases", len(list))
			}
		})
	}
}

// overwrite replaces a stored blob's bytes behind the store's back.
func overwrite(t *testing.T, root string, dgst interface{ String() string }, data []byte) {
	t.Helper()
	hexPart := dgst.String()[len("sha256:"):]
	path := filepath.Join(root, "blobs", "sha256", hexPart)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("blob file: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHistoryAndStatus(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	staging := f.env("staging")
	start := f.clock.Now()
	r1, r2 := f.promote("1.0.0"), f.promote("1.1.0")
	f.clock.Advance(time.Minute)
	res, err := f.svc.Rollback(ctx, staging, oncall, rollback.Request{Name: "model", Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	r3 := *res.Release

	page, next, err := f.svc.History(ctx, staging, "model", registry.ReleasePage{Limit: 2})
	if err != nil || len(page) != 2 || page[0].Number != 3 || page[1].Number != 2 || next != 2 {
		t.Fatalf("first page: %+v next %d %v", page, next, err)
	}
	page, next, err = f.svc.History(ctx, staging, "model", registry.ReleasePage{Limit: 2, Before: next})
	if err != nil || len(page) != 1 || page[0].ID != r1.ID || next != 0 {
		t.Fatalf("last page: %+v next %d %v", page, next, err)
	}
	if _, _, err := f.svc.History(ctx, staging, "Bad!", registry.ReleasePage{}); registry.AsError(err).Code != registry.CodeInvalidName.Name {
		t.Errorf("history of a bad name: %v", err)
	}

	tests := []struct {
		name string
		at   time.Time
		want int64 // release id; 0: absent
	}{
		{"before the first release", start, 0},
		{"at the first release", r1.CreatedAt, r1.ID},
		{"between", r2.CreatedAt.Add(-time.Second), r1.ID},
		{"after the promotion", r2.CreatedAt.Add(time.Second), r2.ID},
		{"after the rollback", r3.CreatedAt, r3.ID},
		{"in the future: now", r3.CreatedAt.Add(24 * time.Hour), r3.ID},
		{"zero: now", time.Time{}, r3.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, at, err := f.svc.Status(ctx, staging, tt.at, "model")
			if err != nil {
				t.Fatal(err)
			}
			if at.After(f.clock.Now()) {
				t.Errorf("answered for %s, after now (%s)", at, f.clock.Now())
			}
			switch {
			case tt.want == 0 && len(got) != 0:
				t.Errorf("got %+v, want no release", got)
			case tt.want != 0 && (len(got) != 1 || got[0].ID != tt.want):
				t.Errorf("got %+v, want release %d", got, tt.want)
			}
		})
	}
}
