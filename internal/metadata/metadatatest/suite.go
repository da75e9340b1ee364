// Package metadatatest is the conformance suite of the metadata store. Each
// supported database runs the same suite, so SQLite and PostgreSQL cannot
// drift apart in behaviour.
package metadatatest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/registry"
)

// RunStoreSuite runs every conformance test. open must return a Store on a
// fresh, empty, migrated database, configured with exactly environments,
// and close it when t ends (t.Cleanup); it is called once per subtest so
// that subtests cannot see each other.
func RunStoreSuite(t *testing.T, open func(t *testing.T, environments []string) *metadata.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *metadata.Store)
	}{
		{"Ping", testPing},
		{"UnknownEnvironment", testUnknownEnvironment},
		{"CommitAndGet", testCommitAndGet},
		{"CommitIdempotent", testCommitIdempotent},
		{"CommitConflictWritesNothing", testCommitConflict},
		{"CommitWrongEnvironment", testCommitWrongEnvironment},
		{"CommitConcurrentConflicting", testCommitConcurrentConflicting},
		{"CommitConcurrentIdentical", testCommitConcurrentIdentical},
		{"GetVersionNotFound", testGetVersionNotFound},
		{"ListVersions", testListVersions},
		{"ListArtifacts", testListArtifacts},
		{"EnvironmentIsolation", testIsolation},
		{"AuditRoundTrip", testAuditRoundTrip},
		{"AuditUnbound", testAuditUnbound},
		{"AuditForeignEnvironment", testAuditForeignEnvironment},
		{"AuditFilters", testAuditFilters},
		{"AuditPaging", testAuditPaging},
		{"AuditLimits", testAuditLimits},
		{"AuditNameVersion", testAuditNameVersion},
		{"AuditChain", testAuditChain},
		{"AuditChainConcurrent", testAuditChainConcurrent},
		{"AuditCursorConcurrent", testAuditCursorConcurrent},
		{"AuditExport", testAuditExport},
		{"KeyLifecycle", testKeyLifecycle},
		{"KeyDuplicates", testKeyDuplicates},
		{"KeyWrongEnvironment", testKeyWrongEnvironment},
		{"CancelledContext", testCancelledContext},
		{"Signatures", testSignatures},
		{"Evidence", testEvidence},
		{"EvidenceRefused", testEvidenceRefused},
		{"Approvals", testApprovals},
		{"GateRuns", testGateRuns},
		{"NoReleases", testNoReleases},
		{"PromotionChain", testPromotionChain},
		{"PromotionIdempotent", testPromotionIdempotent},
		{"PromotionConflictWritesNothing", testPromotionConflict},
		{"PromotionRefused", testPromotionRefused},
		{"PromotionConcurrentIdentical", testPromotionConcurrentIdentical},
		{"PromotionConcurrentVersions", testPromotionConcurrentVersions},
		{"ReleaseIsolation", testReleaseIsolation},
		{"GCHandshake", testGCHandshake},
		{"RollbackChain", testRollbackChain},
		{"RollbackRefused", testRollbackRefused},
		{"ReleasePages", testReleasePages},
		{"ReleasesAt", testReleasesAt},
		{"ReleaseTimesFollowTheChain", testReleaseTimesFollowTheChain},
		{"RollbackRacesPromotion", testRollbackRacesPromotion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t, environments())) })
	}
}

// environments are the environments every suite store is configured with.
// A function, so that no test can change another's list.
func environments() []string { return []string{"dev", "staging", "prod"} }

// RunReopenSuite checks that a database outlives its Store and that several
// Stores (standing in for processes or replicas) share one database safely:
// Open on a migrated database is a no-op migration, and concurrent commits
// through different Stores still agree on one winner. driver and dsn must
// name one fresh database that only this test uses.
func RunReopenSuite(t *testing.T, driver, dsn string) {
	ctx := context.Background()
	first := mustOpen(t, driver, dsn)
	rec := version("dev", "reopen", "1.0.0", 1)
	if _, _, err := mustEnv(t, first, "dev").CommitVersion(ctx, rec, event("artifact.publish", "reopen@1.0.0")); err != nil {
		t.Fatalf("CommitVersion: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Reopen several times at once: migrations must already be applied.
	stores := make([]*metadata.Store, 4)
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = metadata.Open(ctx, driver, dsn, environments())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	got, err := mustEnv(t, stores[0], "dev").GetVersion(ctx, "reopen", "1.0.0")
	if err != nil {
		t.Fatalf("GetVersion after reopen: %v", err)
	}
	if diff := cmp.Diff(rec, got); diff != "" {
		t.Errorf("version after reopen (-want +got):\n%s", diff)
	}

	// Conflicting commits through different Stores: exactly one wins.
	devs := make([]*metadata.Env, len(stores))
	for i, s := range stores {
		devs[i] = mustEnv(t, s, "dev")
	}
	const n = 8
	results := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, results[i] = devs[i%len(devs)].CommitVersion(ctx, version("dev", "race", "2.0.0", i+10), event("artifact.publish", "race@2.0.0"))
		})
	}
	wg.Wait()
	created := 0
	for _, err := range results {
		switch {
		case err == nil:
			created++
		case !isKind(err, registry.Exists, registry.CodeVersionExists.Name):
			t.Errorf("concurrent CommitVersion: %v, want nil or version_exists", err)
		}
	}
	if created != 1 {
		t.Errorf("%d commits succeeded across stores, want exactly 1", created)
	}
}

func mustOpen(t *testing.T, driver, dsn string) *metadata.Store {
	t.Helper()
	s, err := metadata.Open(context.Background(), driver, dsn, environments())
	if err != nil {
		t.Fatalf("Open(%s): %v", driver, err)
	}
	return s
}

// mustEnv is s's handle of a configured environment.
func mustEnv(t *testing.T, s *metadata.Store, name string) *metadata.Env {
	t.Helper()
	e, err := s.Env(name)
	if err != nil {
		t.Fatalf("Env(%q): %v", name, err)
	}
	return e
}

// t0 has nanoseconds and a non-UTC zone: the store must return it in UTC,
// truncated to microseconds.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

func digest(i int) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i)}
}

// version builds a record whose content is identified by seed.
func version(env, name, ver string, seed int) registry.VersionRecord {
	return registry.VersionRecord{
		Environment:     env,
		Name:            name,
		Version:         ver,
		OriginalVersion: "v" + ver,
		Kind:            registry.KindModel,
		ManifestDigest:  digest(seed),
		ManifestSize:    512,
		Files: []registry.File{
			{Path: "model.safetensors", Digest: digest(seed + 1000), Size: 1 << 40, MediaType: registry.DefaultFileMediaType},
			{Path: "tokenizer/ü.json", Digest: digest(seed + 2000), Size: 7, MediaType: "application/json"},
		},
		Labels:       map[string]string{"team": "fraud", "quote": `"x"`},
		SourceCommit: "0123456789abcdef",
		CreatedAt:    t0.UTC().Truncate(time.Microsecond),
		CreatedBy:    "ci",
		CISignature:  registry.CITrusted,
	}
}

// testSignatures: signatures commit with their version, come back with
// GetVersion, are added (not duplicated) by a retry, and stay in their
// environment.
func testSignatures(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	envSig := registry.Signature{Role: registry.SignedByEnvironment, KeyID: "k-env", Subject: registry.SubjectManifest,
		Signature: "MEUCIQ==", Trusted: true, CreatedAt: t0.UTC().Truncate(time.Microsecond)}
	ciSig := registry.Signature{Role: registry.SignedByCI, KeyID: "k-ci", Subject: "model.safetensors",
		Signature: "MEQCIA==", Trusted: false, CreatedAt: t0.UTC().Truncate(time.Microsecond)}
	rec := version("dev", "signed", "1.0.0", 1)
	rec.Signatures = []registry.Signature{envSig}
	got, created, err := mustEnv(t, s, "dev").CommitVersion(ctx, rec, event(audit.ActionPublish, "signed@1.0.0"))
	if err != nil || !created {
		t.Fatalf("commit: created=%v err=%v", created, err)
	}
	if diff := cmp.Diff([]registry.Signature{envSig}, got.Signatures); diff != "" {
		t.Fatalf("committed signatures (-want +got):\n%s", diff)
	}
	rec.Signatures = []registry.Signature{envSig, ciSig}
	if _, created, err := mustEnv(t, s, "dev").CommitVersion(ctx, rec, event(audit.ActionPublish, "signed@1.0.0")); err != nil || created {
		t.Fatalf("retry: created=%v err=%v", created, err)
	}
	back, err := mustEnv(t, s, "dev").GetVersion(ctx, "signed", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]registry.Signature{envSig, ciSig}, back.Signatures); diff != "" {
		t.Fatalf("signatures after retry (-want +got):\n%s", diff)
	}
	if back.CISignature != registry.CITrusted {
		t.Fatalf("ci signature trust = %q", back.CISignature)
	}
	rotated := registry.Signature{Role: registry.SignedByEnvironment, KeyID: "k-env-2", Subject: registry.SubjectManifest,
		Signature: "MEYCIQ==", Trusted: true, CreatedAt: t0.UTC()}
	if err := mustEnv(t, s, "dev").AddSignatures(ctx, rec.ManifestDigest, []registry.Signature{rotated, envSig}); err != nil {
		t.Fatal(err)
	}
	back, _ = mustEnv(t, s, "dev").GetVersion(ctx, "signed", "1.0.0")
	if len(back.Signatures) != 3 {
		t.Fatalf("after AddSignatures: %d signatures, want 3", len(back.Signatures))
	}
	prod := version("prod", "signed", "1.0.0", 1)
	if _, _, err := mustEnv(t, s, "prod").CommitVersion(ctx, prod, event(audit.ActionPublish, "signed@1.0.0")); err != nil {
		t.Fatal(err)
	}
	if back, _ := mustEnv(t, s, "prod").GetVersion(ctx, "signed", "1.0.0"); len(back.Signatures) != 0 {
		t.Fatalf("dev signatures visible in prod: %+v", back.Signatures)
	}
}

func event(action, target string) audit.Event {
	return audit.Event{Time: t0, Actor: "ci", CredentialID: "k1", Action: action, Target: target,
		Outcome: audit.Success, RequestID: "req-" + target}
}

// auditEvent is event labelled with env, as Env.AppendAudit requires.
func auditEvent(env, action, target string) audit.Event {
	ev := event(action, target)
	ev.Environment = env
	return ev
}

// isKind reports whether err is a *registry.Error of kind and code.
func isKind(err error, kind registry.ErrorKind, code string) bool {
	var re *registry.Error
	return errors.As(err, &re) && re.Kind == kind && re.Code == code
}

func wantErr(t *testing.T, what string, err error, kind registry.ErrorKind, code string) {
	t.Helper()
	if !isKind(err, kind, code) {
		t.Errorf("%s: got error %v, want kind %v code %q", what, err, kind, code)
	}
}

// auditCount is the number of events in env (up to the maximum page).
func auditCount(t *testing.T, e *metadata.Env) int {
	t.Helper()
	evs, err := e.QueryAudit(context.Background(), audit.Filter{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatalf("QueryAudit: %v", err)
	}
	return len(evs)
}

func testPing(t *testing.T, s *metadata.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	for _, name := range environments() {
		if got := mustEnv(t, s, name).Name(); got != name {
			t.Errorf("Env(%q).Name() = %q", name, got)
		}
	}
}

// testUnknownEnvironment: only configured names have handles, matched
// exactly.
func testUnknownEnvironment(t *testing.T, s *metadata.Store) {
	for _, name := range []string{"nope", "", "Dev", " dev", "dev "} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			e, err := s.Env(name)
			if e != nil {
				t.Errorf("Env(%q) returned a handle for %q", name, e.Name())
			}
			wantErr(t, fmt.Sprintf("Env(%q)", name), err, registry.NotFound, registry.CodeNotFound.Name)
			var re *registry.Error
			if want := fmt.Sprintf("unknown environment %q", name); errors.As(err, &re) && re.Message != want {
				t.Errorf("Env(%q) message = %q, want %q", name, re.Message, want)
			}
		})
	}
}

func testCommitAndGet(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	want := version("dev", "team/fraud-detector", "1.4.0", 1)
	in := want
	in.CreatedAt = t0 // not normalised: the store must do it
	got, created, err := dev.CommitVersion(ctx, in, event("artifact.publish", "team/fraud-detector@1.4.0"))
	if err != nil || !created {
		t.Fatalf("CommitVersion = %v, %v; want created", created, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CommitVersion result (-want +got):\n%s", diff)
	}
	stored, err := dev.GetVersion(ctx, want.Name, want.Version)
	if err != nil {
		t.Fatalf("GetVersion: %v", err)
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("GetVersion (-want +got):\n%s", diff)
	}
	if stored.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", stored.CreatedAt.Location())
	}

	// nil Files and Labels round-trip as nil.
	bare := version("dev", "bare", "0.1.0", 2)
	bare.Files, bare.Labels = nil, nil
	if _, _, err := dev.CommitVersion(ctx, bare, event("artifact.publish", "bare@0.1.0")); err != nil {
		t.Fatalf("CommitVersion(bare): %v", err)
	}
	if got, err := dev.GetVersion(ctx, "bare", "0.1.0"); err != nil {
		t.Fatalf("GetVersion(bare): %v", err)
	} else if diff := cmp.Diff(bare, got); diff != "" {
		t.Errorf("GetVersion(bare) (-want +got):\n%s", diff)
	}

	evs, err := dev.QueryAudit(ctx, audit.Filter{Target: "team/fraud-detector@1.4.0"})
	if err != nil {
		t.Fatalf("QueryAudit: %v", err)
	}
	if len(evs) != 1 || evs[0].Action != "artifact.publish" || evs[0].Environment != "dev" {
		t.Errorf("audit after commit = %+v, want one dev artifact.publish event", evs)
	}
}

func testCommitIdempotent(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	first := version("dev", "a", "1.0.0", 1)
	if _, _, err := dev.CommitVersion(ctx, first, event("artifact.publish", "a@1.0.0")); err != nil {
		t.Fatalf("first CommitVersion: %v", err)
	}
	again := first
	again.CreatedAt = t0.Add(time.Hour)
	again.CreatedBy = "someone-else"
	got, created, err := dev.CommitVersion(ctx, again, event("artifact.publish", "a@1.0.0"))
	if err != nil || created {
		t.Fatalf("repeat CommitVersion = %v, %v; want not created, nil", created, err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Errorf("repeat returns the existing record (-want +got):\n%s", diff)
	}
	if n := auditCount(t, dev); n != 2 {
		t.Errorf("%d audit events, want 2 (the repeat is audited too)", n)
	}
}

func testCommitConflict(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	first := version("dev", "a", "1.0.0", 1)
	if _, _, err := dev.CommitVersion(ctx, first, event("artifact.publish", "a@1.0.0")); err != nil {
		t.Fatalf("first CommitVersion: %v", err)
	}
	_, _, err := dev.CommitVersion(ctx, version("dev", "a", "1.0.0", 2), event("artifact.publish", "a@1.0.0"))
	wantErr(t, "conflicting CommitVersion", err, registry.Exists, registry.CodeVersionExists.Name)

	got, err := dev.GetVersion(ctx, "a", "1.0.0")
	if err != nil {
		t.Fatalf("GetVersion: %v", err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Errorf("version changed by a refused commit (-want +got):\n%s", diff)
	}
	if n := auditCount(t, dev); n != 1 {
		t.Errorf("%d audit events, want 1 (a refused commit appends nothing)", n)
	}
}

func testCommitWrongEnvironment(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	_, _, err := mustEnv(t, s, "dev").CommitVersion(ctx, version("prod", "a", "1.0.0", 1), event("artifact.publish", "a@1.0.0"))
	wantErr(t, "CommitVersion of a prod record through dev", err, registry.Internal, registry.CodeInternal.Name)
	for _, env := range []string{"dev", "prod"} {
		if vs, err := mustEnv(t, s, env).ListVersions(ctx, "a"); err != nil || len(vs) != 0 {
			t.Errorf("%s ListVersions = %v, %v; want empty", env, vs, err)
		}
		if n := auditCount(t, mustEnv(t, s, env)); n != 0 {
			t.Errorf("%s has %d audit events, want 0", env, n)
		}
	}
}

func testCommitConcurrentConflicting(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	const n = 16
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			_, _, errs[i] = dev.CommitVersion(ctx, version("dev", "race", "1.0.0", i), event("artifact.publish", "race@1.0.0"))
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("commits %d and %d both succeeded", winner, i)
			}
			winner = i
		case !isKind(err, registry.Exists, registry.CodeVersionExists.Name):
			t.Errorf("commit %d: %v, want nil or version_exists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no commit succeeded")
	}
	got, err := dev.GetVersion(ctx, "race", "1.0.0")
	if err != nil {
		t.Fatalf("GetVersion: %v", err)
	}
	if got.ManifestDigest != digest(winner) {
		t.Errorf("stored digest %v, want the winner's %v", got.ManifestDigest, digest(winner))
	}
	if n := auditCount(t, dev); n != 1 {
		t.Errorf("%d audit events, want 1 (only the winner's)", n)
	}
}

func testCommitConcurrentIdentical(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	const n = 16
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		errs    = make([]error, n)
		created = make([]bool, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			_, created[i], errs[i] = dev.CommitVersion(ctx, version("dev", "same", "1.0.0", 7), event("artifact.publish", "same@1.0.0"))
		})
	}
	close(start)
	wg.Wait()
	count := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("commit %d: %v", i, errs[i])
		}
		if created[i] {
			count++
		}
	}
	if count != 1 {
		t.Errorf("%d commits report created, want 1", count)
	}
	if got := auditCount(t, dev); got != n {
		t.Errorf("%d audit events, want %d (every idempotent repeat is audited)", got, n)
	}
}

func testGetVersionNotFound(t *testing.T, s *metadata.Store) {
	_, err := mustEnv(t, s, "dev").GetVersion(context.Background(), "nope", "1.0.0")
	wantErr(t, "GetVersion of a missing version", err, registry.NotFound, registry.CodeVersionNotFound.Name)
}

func testListVersions(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	got, err := dev.ListVersions(ctx, "a")
	if err != nil {
		t.Fatalf("ListVersions: %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("ListVersions of an unknown name = %#v, want empty non-nil", got)
	}
	want := map[string]registry.VersionRecord{}
	for i, v := range []string{"1.0.0", "1.1.0", "2.0.0-rc.1"} {
		rec := version("dev", "a", v, i)
		want[v] = rec
		if _, _, err := dev.CommitVersion(ctx, rec, event("artifact.publish", "a@"+v)); err != nil {
			t.Fatalf("CommitVersion: %v", err)
		}
	}
	if _, _, err := dev.CommitVersion(ctx, version("dev", "ab", "1.0.0", 9), event("artifact.publish", "ab@1.0.0")); err != nil {
		t.Fatalf("CommitVersion: %v", err)
	}
	got, err = dev.ListVersions(ctx, "a")
	if err != nil {
		t.Fatalf("ListVersions: %v", err)
	}
	gotByVersion := map[string]registry.VersionRecord{}
	for _, r := range got {
		gotByVersion[r.Version] = r
	}
	if len(got) != len(want) {
		t.Errorf("ListVersions returned %d records, want %d", len(got), len(want))
	}
	if diff := cmp.Diff(want, gotByVersion); diff != "" {
		t.Errorf("ListVersions (-want +got):\n%s", diff)
	}
}

func testListArtifacts(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	got, err := dev.ListArtifacts(ctx)
	if err != nil {
		t.Fatalf("ListArtifacts: %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("ListArtifacts of an empty environment = %#v, want empty non-nil", got)
	}
	commits := []struct {
		name, version string
		kind          registry.Kind
		at            time.Duration
	}{
		{"zeta", "1.0.0", registry.KindGeneric, 0},
		{"team/b", "1.0.0", registry.KindSchema, time.Minute},
		{"team/b", "2.0.0", registry.KindFeatures, 3 * time.Minute}, // newest of team/b
		{"team/b", "1.5.0", registry.KindSchema, 2 * time.Minute},
		{"team-a", "0.1.0", registry.KindAgentConfig, time.Second},
	}
	for i, c := range commits {
		rec := version("dev", c.name, c.version, i)
		rec.Kind = c.kind
		rec.CreatedAt = rec.CreatedAt.Add(c.at)
		if _, _, err := dev.CommitVersion(ctx, rec, event("artifact.publish", c.name+"@"+c.version)); err != nil {
			t.Fatalf("CommitVersion: %v", err)
		}
	}
	// Another environment must not leak in.
	if _, _, err := mustEnv(t, s, "prod").CommitVersion(ctx, version("prod", "alpha", "1.0.0", 99), event("artifact.publish", "alpha@1.0.0")); err != nil {
		t.Fatalf("CommitVersion(prod): %v", err)
	}
	base := t0.UTC().Truncate(time.Microsecond)
	want := []registry.ArtifactSummary{ // byte order: '-' < '/' < 'z'
		{Name: "team-a", Kind: registry.KindAgentConfig, VersionCount: 1, LastPublished: base.Add(time.Second)},
		{Name: "team/b", Kind: registry.KindFeatures, VersionCount: 3, LastPublished: base.Add(3 * time.Minute)},
		{Name: "zeta", Kind: registry.KindGeneric, VersionCount: 1, LastPublished: base},
	}
	got, err = dev.ListArtifacts(ctx)
	if err != nil {
		t.Fatalf("ListArtifacts: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListArtifacts (-want +got):\n%s", diff)
	}
}

func testIsolation(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev, prod := mustEnv(t, s, "dev"), mustEnv(t, s, "prod")
	if _, _, err := dev.CommitVersion(ctx, version("dev", "a", "1.0.0", 1), event("artifact.publish", "a@1.0.0")); err != nil {
		t.Fatalf("CommitVersion: %v", err)
	}
	key := auth.Key{ID: "kdev", Name: "ci", Environment: "dev", Role: auth.RolePublisher, TokenHash: "hash-dev", CreatedAt: t0, CreatedBy: "admin"}
	if err := dev.CreateKey(ctx, key, event("key.create", "kdev")); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if _, err := dev.AppendAudit(ctx, auditEvent("dev", "artifact.pull", "a@1.0.0")); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}

	checks := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"GetVersion", func(t *testing.T) {
			_, err := prod.GetVersion(ctx, "a", "1.0.0")
			wantErr(t, "prod GetVersion of a dev version", err, registry.NotFound, registry.CodeVersionNotFound.Name)
		}},
		{"ListVersions", func(t *testing.T) {
			if vs, err := prod.ListVersions(ctx, "a"); err != nil || len(vs) != 0 {
				t.Errorf("prod ListVersions = %v, %v; want empty", vs, err)
			}
		}},
		{"ListArtifacts", func(t *testing.T) {
			if as, err := prod.ListArtifacts(ctx); err != nil || len(as) != 0 {
				t.Errorf("prod ListArtifacts = %v, %v; want empty", as, err)
			}
		}},
		{"QueryAudit", func(t *testing.T) {
			if evs, err := prod.QueryAudit(ctx, audit.Filter{}); err != nil || len(evs) != 0 {
				t.Errorf("prod QueryAudit = %v, %v; want empty", evs, err)
			}
		}},
		{"ListKeys", func(t *testing.T) {
			if ks, err := prod.ListKeys(ctx); err != nil || len(ks) != 0 {
				t.Errorf("prod ListKeys = %v, %v; want empty", ks, err)
			}
		}},
		{"RevokeKey", func(t *testing.T) {
			err := prod.RevokeKey(ctx, "kdev", t0, event("key.revoke", "kdev"))
			wantErr(t, "prod RevokeKey of a dev key", err, registry.NotFound, registry.CodeNotFound.Name)
			k, err := s.KeyByHash(ctx, "hash-dev")
			if err != nil || k.RevokedAt != nil {
				t.Errorf("dev key after prod revoke = %+v, %v; want unrevoked", k, err)
			}
			if n := auditCount(t, prod); n != 0 {
				t.Errorf("prod has %d audit events after a refused revoke, want 0", n)
			}
		}},
		{"CommitSameNameInProd", func(t *testing.T) {
			// The same name@version with other content is a different version in prod.
			_, created, err := prod.CommitVersion(ctx, version("prod", "a", "1.0.0", 2), event("artifact.promote", "a@1.0.0"))
			if err != nil || !created {
				t.Errorf("prod CommitVersion = %v, %v; want created", created, err)
			}
			got, err := dev.GetVersion(ctx, "a", "1.0.0")
			if err != nil || got.ManifestDigest != digest(1) {
				t.Errorf("dev version after prod commit = %v, %v; want digest unchanged", got.ManifestDigest, err)
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.check)
	}
}

func testAuditRoundTrip(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	in := audit.Event{
		ID:           12345, // ignored: the store assigns ids
		Time:         t0,
		Environment:  "dev",
		Actor:        "alice",
		CredentialID: "k-alice",
		Action:       "artifact.promote",
		Target:       "fraud-detector@1.2.0",
		Outcome:      audit.Denied,
		ErrorCode:    "gate_failed",
		RequestID:    "req-1",
		Details:      map[string]string{"gate": "tests", "reason": "auc < 0.91"},
	}
	id, err := dev.AppendAudit(ctx, in)
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	id2, err := dev.AppendAudit(ctx, audit.Event{Environment: "dev", Actor: "bob", Action: "artifact.pull", Outcome: audit.Success})
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if id2 <= id {
		t.Errorf("ids %d then %d: want increasing", id, id2)
	}
	got, err := dev.QueryAudit(ctx, audit.Filter{})
	if err != nil {
		t.Fatalf("QueryAudit: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("QueryAudit returned %d events, want 2", len(got))
	}
	want := in
	want.ID, want.Time = id, t0.UTC().Truncate(time.Microsecond)
	// The store derives the artifact from the target and chains the event.
	want.Name, want.Version, want.Seq = "fraud-detector", "1.2.0", 1
	want.Hash = want.ComputeHash()
	if diff := cmp.Diff(want, got[1]); diff != "" {
		t.Errorf("stored event (-want +got):\n%s", diff)
	}
	if got[0].ID != id2 || got[0].Time.IsZero() || got[0].Details != nil {
		t.Errorf("second event = %+v; want id %d, time defaulted to now, nil details", got[0], id2)
	}
}

// testAuditUnbound: events of unauthenticated requests belong to no
// environment, whatever the caller set, so no handle sees them.
func testAuditUnbound(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	for _, claimed := range []string{"", "prod", "nope"} {
		ev := event("auth.refused", "")
		ev.Environment, ev.Outcome, ev.ErrorCode = claimed, audit.Denied, registry.CodeUnauthenticated.Name
		if _, err := s.AppendUnboundAudit(ctx, ev); err != nil {
			t.Fatalf("AppendUnboundAudit(Environment %q): %v", claimed, err)
		}
	}
	for _, name := range environments() {
		if n := auditCount(t, mustEnv(t, s, name)); n != 0 {
			t.Errorf("%s sees %d unbound events, want 0", name, n)
		}
	}
}

// testAuditForeignEnvironment: a handle refuses an event labelled with any
// environment but its own, rather than relabel it, and writes nothing.
func testAuditForeignEnvironment(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	tests := []struct {
		name, env string
	}{
		{"another environment", "prod"},
		{"no environment", ""},
		{"unknown environment", "nope"},
		{"differently cased", "Dev"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dev.AppendAudit(ctx, auditEvent(tc.env, "artifact.pull", "a@1.0.0"))
			wantErr(t, "AppendAudit of a foreign event", err, registry.Internal, registry.CodeInternal.Name)
		})
	}
	for _, name := range environments() {
		if n := auditCount(t, mustEnv(t, s, name)); n != 0 {
			t.Errorf("%s has %d audit events after refusals, want 0", name, n)
		}
	}
}

func testAuditFilters(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	seed := []audit.Event{
		{Action: "artifact.publish", Target: "fraud-detector@1.0.0", Actor: "ci", Outcome: audit.Success, RequestID: "r1"},
		{Action: "artifact.publish", Target: "fraud-detector@1.1.0", Actor: "ci", Outcome: audit.Denied, ErrorCode: "version_exists", RequestID: "r2"},
		{Action: "artifact.promote", Target: "fraud-detector@1.0.0", Actor: "alice", Outcome: audit.Success, RequestID: "r3"},
		{Action: "artifact.publish", Target: "Fraud-Detector@1.0.0", Actor: "ci", Outcome: audit.Failed, RequestID: "r4"},
		{Action: "artifact.publish", Target: "fraud_detector@1.0.0", Actor: "ci", Outcome: audit.Success, RequestID: "r5"},
		{Action: "key.create", Target: "k%1", Actor: "alice", Outcome: audit.Success, RequestID: "r6"},
	}
	ids := make([]int64, len(seed))
	for i, ev := range seed {
		ev.Time, ev.Environment = t0.Add(time.Duration(i)*time.Minute), "dev"
		id, err := dev.AppendAudit(ctx, ev)
		if err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		ids[i] = id
	}
	// Noise in another environment that matches every filter.
	for _, ev := range seed {
		ev.Time, ev.Environment = t0, "prod"
		if _, err := mustEnv(t, s, "prod").AppendAudit(ctx, ev); err != nil {
			t.Fatalf("AppendAudit(prod): %v", err)
		}
	}

	tests := []struct {
		name string
		f    audit.Filter
		want []int // indexes into seed, newest first
	}{
		{"all", audit.Filter{}, []int{5, 4, 3, 2, 1, 0}},
		{"action", audit.Filter{Action: "artifact.publish"}, []int{4, 3, 1, 0}},
		{"exact target", audit.Filter{Target: "fraud-detector@1.0.0"}, []int{2, 0}},
		{"target prefix", audit.Filter{Target: "fraud-detector@*"}, []int{2, 1, 0}},
		{"target prefix is case-sensitive, '_' is literal", audit.Filter{Target: "fraud_*"}, []int{4}},
		{"target prefix with %", audit.Filter{Target: "k%*"}, []int{5}},
		{"bare star matches all", audit.Filter{Target: "*"}, []int{5, 4, 3, 2, 1, 0}},
		{"actor", audit.Filter{Actor: "alice"}, []int{5, 2}},
		{"outcome", audit.Filter{Outcome: audit.Denied}, []int{1}},
		{"request id", audit.Filter{RequestID: "r4"}, []int{3}},
		{"since is inclusive", audit.Filter{Since: t0.Add(4 * time.Minute)}, []int{5, 4}},
		{"until is exclusive", audit.Filter{Until: t0.Add(2 * time.Minute)}, []int{1, 0}},
		{"since and until", audit.Filter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []int{2, 1}},
		{"before id", audit.Filter{BeforeID: ids[2]}, []int{1, 0}},
		{"combined", audit.Filter{Action: "artifact.publish", Actor: "ci", Outcome: audit.Success, Target: "fraud*"}, []int{4, 0}},
		{"limit", audit.Filter{Limit: 2}, []int{5, 4}},
		{"no match", audit.Filter{Action: "nope"}, []int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dev.QueryAudit(ctx, tc.f)
			if err != nil {
				t.Fatalf("QueryAudit: %v", err)
			}
			gotIDs := make([]int64, len(got))
			for i, ev := range got {
				gotIDs[i] = ev.ID
			}
			wantIDs := make([]int64, len(tc.want))
			for i, j := range tc.want {
				wantIDs[i] = ids[j]
			}
			if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}

func testAuditPaging(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	const total = 25
	var want []int64
	for i := range total {
		id, err := dev.AppendAudit(ctx, auditEvent("dev", "artifact.pull", fmt.Sprintf("a@1.0.%d", i)))
		if err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		want = append([]int64{id}, want...) // newest first
	}
	var got []int64
	f := audit.Filter{Limit: 10}
	for range total { // bounded: a broken BeforeID must not loop forever
		page, err := dev.QueryAudit(ctx, f)
		if err != nil {
			t.Fatalf("QueryAudit: %v", err)
		}
		if len(page) == 0 {
			break
		}
		for _, ev := range page {
			got = append(got, ev.ID)
		}
		f.BeforeID = page[len(page)-1].ID
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged ids (-want +got):\n%s", diff)
	}
}

func testAuditLimits(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	for i := range audit.MaxLimit + 5 {
		if _, err := dev.AppendAudit(ctx, auditEvent("dev", "artifact.pull", fmt.Sprintf("a@%d", i))); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	tests := []struct {
		limit, want int
	}{
		{0, audit.DefaultLimit},
		{-1, audit.DefaultLimit},
		{7, 7},
		{audit.MaxLimit + 1, audit.MaxLimit},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			got, err := dev.QueryAudit(ctx, audit.Filter{Limit: tc.limit})
			if err != nil {
				t.Fatalf("QueryAudit: %v", err)
			}
			if len(got) != tc.want {
				t.Errorf("Limit %d returned %d events, want %d", tc.limit, len(got), tc.want)
			}
		})
	}
}

func testKeyLifecycle(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	if ks, err := dev.ListKeys(ctx); err != nil || ks == nil || len(ks) != 0 {
		t.Errorf("ListKeys of no keys = %#v, %v; want empty non-nil", ks, err)
	}
	_, err := s.KeyByHash(ctx, "missing")
	wantErr(t, "KeyByHash of an unknown hash", err, registry.NotFound, registry.CodeNotFound.Name)

	base := t0.UTC().Truncate(time.Microsecond)
	keys := []auth.Key{
		{ID: "k2", Name: "deployer", Environment: "dev", Role: auth.RolePromoter, Owner: "dana@example.com", TokenHash: "h2",
			CreatedAt: t0.Add(time.Minute), CreatedBy: "admin", CreatedByOwner: "alice@example.com"},
		{ID: "k1", Name: "ci", Environment: "dev", Role: auth.RolePublisher, TokenHash: "h1", CreatedAt: t0, CreatedBy: "admin"},
	}
	for _, k := range keys {
		if err := dev.CreateKey(ctx, k, event("key.create", k.ID)); err != nil {
			t.Fatalf("CreateKey(%s): %v", k.ID, err)
		}
	}
	want := []auth.Key{keys[1], keys[0]} // by creation time
	want[0].CreatedAt, want[1].CreatedAt = base, base.Add(time.Minute)
	got, err := dev.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListKeys (-want +got):\n%s", diff)
	}
	k, err := s.KeyByHash(ctx, "h1")
	if err != nil {
		t.Fatalf("KeyByHash: %v", err)
	}
	if diff := cmp.Diff(want[0], k); diff != "" {
		t.Errorf("KeyByHash (-want +got):\n%s", diff)
	}

	revokedAt := t0.Add(time.Hour)
	if err := dev.RevokeKey(ctx, "k1", revokedAt, event("key.revoke", "k1")); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	if err := dev.RevokeKey(ctx, "k1", revokedAt.Add(time.Hour), event("key.revoke", "k1")); err != nil {
		t.Errorf("second RevokeKey: %v, want idempotent success", err)
	}
	k, err = s.KeyByHash(ctx, "h1")
	if err != nil {
		t.Fatalf("KeyByHash of a revoked key: %v (revoked keys are returned)", err)
	}
	if k.RevokedAt == nil || !k.RevokedAt.Equal(revokedAt.Truncate(time.Microsecond)) || k.RevokedAt.Location() != time.UTC {
		t.Errorf("RevokedAt = %v, want the first revocation %v in UTC", k.RevokedAt, revokedAt)
	}
	if got, err := dev.ListKeys(ctx); err != nil || len(got) != 2 || got[0].RevokedAt == nil || got[1].RevokedAt != nil {
		t.Errorf("ListKeys after revoke = %+v, %v; want k1 revoked, k2 not", got, err)
	}
	err = dev.RevokeKey(ctx, "nope", revokedAt, event("key.revoke", "nope"))
	wantErr(t, "RevokeKey of an unknown key", err, registry.NotFound, registry.CodeNotFound.Name)

	// 2 creates + 2 revokes; the refused revoke wrote nothing.
	evs, err := dev.QueryAudit(ctx, audit.Filter{Action: "key.*"})
	if err != nil {
		t.Fatalf("QueryAudit: %v", err)
	}
	if n := auditCount(t, dev); n != 4 {
		t.Errorf("%d audit events (%+v), want 4", n, evs)
	}
}

func testKeyDuplicates(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	orig := auth.Key{ID: "k1", Name: "ci", Environment: "dev", Role: auth.RolePublisher, TokenHash: "h1", CreatedAt: t0, CreatedBy: "admin"}
	if err := dev.CreateKey(ctx, orig, event("key.create", "k1")); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	tests := []struct {
		name string
		env  string
		key  auth.Key
	}{
		{"same id", "dev", auth.Key{ID: "k1", Name: "other", Environment: "dev", Role: auth.RoleAdmin, TokenHash: "h-other", CreatedAt: t0}},
		{"same hash", "dev", auth.Key{ID: "k-other", Name: "other", Environment: "dev", Role: auth.RoleAdmin, TokenHash: "h1", CreatedAt: t0}},
		{"same id in another environment", "prod", auth.Key{ID: "k1", Name: "other", Environment: "prod", Role: auth.RoleAdmin, TokenHash: "h-prod", CreatedAt: t0}},
		{"same hash in another environment", "prod", auth.Key{ID: "k-prod", Name: "other", Environment: "prod", Role: auth.RoleAdmin, TokenHash: "h1", CreatedAt: t0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := mustEnv(t, s, tc.env).CreateKey(ctx, tc.key, event("key.create", tc.key.ID))
			wantErr(t, "duplicate CreateKey", err, registry.Exists, registry.CodeKeyExists.Name)
		})
	}
	k, err := s.KeyByHash(ctx, "h1")
	if err != nil || k.ID != "k1" || k.Role != auth.RolePublisher {
		t.Errorf("KeyByHash after refused duplicates = %+v, %v; want the original", k, err)
	}
	for _, env := range []string{"dev", "prod"} {
		want := map[string]int{"dev": 1, "prod": 0}[env]
		if n := auditCount(t, mustEnv(t, s, env)); n != want {
			t.Errorf("%s has %d audit events, want %d", env, n, want)
		}
	}
}

func testKeyWrongEnvironment(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	k := auth.Key{ID: "k1", Name: "ci", Environment: "prod", Role: auth.RoleAdmin, TokenHash: "h1", CreatedAt: t0}
	err := mustEnv(t, s, "dev").CreateKey(ctx, k, event("key.create", "k1"))
	wantErr(t, "CreateKey of a prod key through dev", err, registry.Internal, registry.CodeInternal.Name)
	_, err = s.KeyByHash(ctx, "h1")
	wantErr(t, "KeyByHash after refused create", err, registry.NotFound, registry.CodeNotFound.Name)
}

func testCancelledContext(t *testing.T, s *metadata.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dev := mustEnv(t, s, "dev")
	calls := []struct {
		name string
		call func() error
	}{
		{"GetVersion", func() error { _, err := dev.GetVersion(ctx, "a", "1.0.0"); return err }},
		{"CommitVersion", func() error {
			_, _, err := dev.CommitVersion(ctx, version("dev", "a", "1.0.0", 1), event("artifact.publish", "a@1.0.0"))
			return err
		}},
		{"QueryAudit", func() error { _, err := dev.QueryAudit(ctx, audit.Filter{}); return err }},
		{"AppendAudit", func() error { _, err := dev.AppendAudit(ctx, auditEvent("dev", "x", "y")); return err }},
		{"CommitPromotion", func() error {
			_, _, err := dev.CommitPromotion(ctx, promotion("dev", "a", "1.0.0", 1))
			return err
		}},
		{"CurrentRelease", func() error { _, err := dev.CurrentRelease(ctx, "a"); return err }},
		{"ListEvidence", func() error { _, err := dev.ListEvidence(ctx, "a", "1.0.0"); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			wantErr(t, c.name+" with a cancelled context", err, registry.Unavailable, registry.CodeUnavailable.Name)
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v does not wrap context.Canceled", c.name, err)
			}
		})
	}
}
