package metadatatest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/registry"
)

// evidence builds a document of type typ about version(env, name, ver, seed).
func evidence(env, name, ver string, seed int, typ string, docSeed int) registry.Evidence {
	return registry.Evidence{
		Environment:    env,
		Name:           name,
		Version:        ver,
		ManifestDigest: digest(seed),
		Type:           typ,
		Digest:         digest(docSeed),
		Size:           1234,
		MediaType:      "application/json",
		CreatedAt:      t0.UTC().Truncate(time.Microsecond),
		CreatedBy:      "ci",
	}
}

// promotion builds the promotion of version(env, name, ver, seed) from
// staging's predecessor, with one signature and two evidence documents.
func promotion(env, name, ver string, seed int) registry.PromotionCommit {
	v := version(env, name, ver, seed)
	v.Signatures = []registry.Signature{{Role: registry.SignedByEnvironment, KeyID: "k-" + env,
		Subject: registry.SubjectManifest, Signature: "MEUCIQ==", Trusted: true, CreatedAt: t0.UTC().Truncate(time.Microsecond)}}
	target := name + "@" + ver
	return registry.PromotionCommit{
		Version: v,
		Evidence: []registry.Evidence{
			evidence(env, name, ver, seed, registry.EvidenceJUnit, seed+5000),
			evidence(env, name, ver, seed, registry.EvidenceMetrics, seed+6000),
		},
		Release: registry.Release{
			Environment:    env,
			Name:           name,
			Version:        ver,
			ManifestDigest: digest(seed),
			Action:         registry.ReleasePromotion,
			Source:         "dev",
			Actor:          "alice",
			Reason:         "ship it",
			GateRunID:      "run-" + target,
			CreatedAt:      t0,
		},
		Event: event("artifact.promote", target),
	}
}

func testEvidence(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	if got, err := dev.ListEvidence(ctx, "a", "1.0.0"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListEvidence of no evidence = %#v, %v; want empty non-nil", got, err)
	}
	if _, _, err := dev.CommitVersion(ctx, version("dev", "a", "1.0.0", 1), event(audit.ActionPublish, "a@1.0.0")); err != nil {
		t.Fatal(err)
	}
	junit := evidence("dev", "a", "1.0.0", 1, registry.EvidenceJUnit, 10)
	metrics := evidence("dev", "a", "1.0.0", 1, registry.EvidenceMetrics, 11)
	sameDigestOtherType := evidence("dev", "a", "1.0.0", 1, registry.EvidenceProvenance, 10)
	repeat := junit
	repeat.CreatedAt, repeat.CreatedBy, repeat.Size = t0.Add(time.Hour), "someone-else", 1

	steps := []struct {
		name        string
		in          registry.Evidence
		want        registry.Evidence
		wantCreated bool
	}{
		{"new", junit, junit, true},
		{"another type", metrics, metrics, true},
		{"same digest, another type", sameDigestOtherType, sameDigestOtherType, true},
		{"repeat returns the existing", repeat, junit, false},
	}
	for _, st := range steps {
		in := st.in
		in.CreatedAt = in.CreatedAt.In(time.FixedZone("CET", 3600)).Add(999 * time.Nanosecond) // normalised by the store
		got, created, err := dev.AddEvidence(ctx, in, event("evidence.add", "a@1.0.0"))
		if err != nil || created != st.wantCreated {
			t.Fatalf("%s: AddEvidence = created %v, %v; want %v", st.name, created, err, st.wantCreated)
		}
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("%s: AddEvidence (-want +got):\n%s", st.name, diff)
		}
	}
	got, err := dev.ListEvidence(ctx, "a", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]registry.Evidence{junit, metrics, sameDigestOtherType}, got); diff != "" {
		t.Errorf("ListEvidence (-want +got):\n%s", diff)
	}
	if n := auditCount(t, dev); n != 1+len(steps) {
		t.Errorf("%d audit events, want %d (the repeat is audited too)", n, 1+len(steps))
	}
}

// testEvidenceRefused: evidence for the wrong environment, a missing version
// or another manifest is refused, and nothing is written.
func testEvidenceRefused(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	if _, _, err := dev.CommitVersion(ctx, version("dev", "a", "1.0.0", 1), event(audit.ActionPublish, "a@1.0.0")); err != nil {
		t.Fatal(err)
	}
	otherManifest := evidence("dev", "a", "1.0.0", 2, registry.EvidenceJUnit, 10)
	noType := evidence("dev", "a", "1.0.0", 1, "", 10)
	tests := []struct {
		name string
		ev   registry.Evidence
		kind registry.ErrorKind
		code string
	}{
		{"other environment", evidence("prod", "a", "1.0.0", 1, registry.EvidenceJUnit, 10), registry.Internal, registry.CodeInternal.Name},
		{"unknown version", evidence("dev", "a", "9.9.9", 1, registry.EvidenceJUnit, 10), registry.NotFound, registry.CodeVersionNotFound.Name},
		{"unknown name", evidence("dev", "b", "1.0.0", 1, registry.EvidenceJUnit, 10), registry.NotFound, registry.CodeVersionNotFound.Name},
		{"other manifest digest", otherManifest, registry.Internal, registry.CodeInternal.Name},
		{"no type", noType, registry.Internal, registry.CodeInternal.Name},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := dev.AddEvidence(ctx, tc.ev, event("evidence.add", "a@1.0.0"))
			wantErr(t, "AddEvidence", err, tc.kind, tc.code)
		})
	}
	if got, err := dev.ListEvidence(ctx, "a", "1.0.0"); err != nil || len(got) != 0 {
		t.Errorf("ListEvidence after refusals = %v, %v; want empty", got, err)
	}
	if n := auditCount(t, dev); n != 1 {
		t.Errorf("%d audit events, want 1 (refusals write nothing)", n)
	}
}

func testApprovals(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	if got, err := prod.ListApprovals(ctx, "a", "1.0.0"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListApprovals of none = %#v, %v; want empty non-nil", got, err)
	}
	base := t0.UTC().Truncate(time.Microsecond)
	approval := func(actor string, seed int, at time.Duration) registry.Approval {
		return registry.Approval{Environment: "prod", Name: "a", Version: "1.0.0", ManifestDigest: digest(seed),
			Actor: actor, CredentialID: "k-" + actor, Identity: actor + "@example.com", KeyCreatedBy: "admin@example.com",
			Role: "approver", Comment: "lgtm", CreatedAt: base.Add(at)}
	}
	// The version need not be in prod: approvals come before the promotion.
	want := []registry.Approval{
		approval("alice", 1, 0),
		approval("bob", 1, time.Minute),
		approval("alice", 1, time.Hour), // re-approval: appended, not merged
		approval("carol", 2, 2*time.Hour),
	}
	want[3].Comment = ""
	want[3].KeyCreatedBy = "" // a key minted before owners existed
	for _, a := range want {
		in := a
		in.CreatedAt = t0.Add(a.CreatedAt.Sub(base)) // not normalised
		got, err := prod.AddApproval(ctx, in, event("artifact.approve", "a@1.0.0"))
		if err != nil {
			t.Fatalf("AddApproval(%s): %v", a.Actor, err)
		}
		if diff := cmp.Diff(a, got); diff != "" {
			t.Errorf("AddApproval (-want +got):\n%s", diff)
		}
	}
	// Noise: another version, another environment.
	other := approval("dave", 1, 0)
	other.Version = "1.1.0"
	if _, err := prod.AddApproval(ctx, other, event("artifact.approve", "a@1.1.0")); err != nil {
		t.Fatal(err)
	}
	staging := approval("erin", 1, 0)
	staging.Environment = "staging"
	if _, err := mustEnv(t, s, "staging").AddApproval(ctx, staging, event("artifact.approve", "a@1.0.0")); err != nil {
		t.Fatal(err)
	}
	got, err := prod.ListApprovals(ctx, "a", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListApprovals (-want +got):\n%s", diff)
	}

	_, err = prod.AddApproval(ctx, staging, event("artifact.approve", "a@1.0.0"))
	wantErr(t, "AddApproval of a staging approval through prod", err, registry.Internal, registry.CodeInternal.Name)
	// An approval nobody can be held to would never count: refused.
	anonymous := approval("frank", 1, 0)
	anonymous.Identity = ""
	_, err = prod.AddApproval(ctx, anonymous, event("artifact.approve", "a@1.0.0"))
	wantErr(t, "AddApproval without an identity", err, registry.Internal, registry.CodeInternal.Name)
	if n := auditCount(t, prod); n != len(want)+1 {
		t.Errorf("%d prod audit events, want %d", n, len(want)+1)
	}
}

func testGateRuns(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	full := registry.GateRun{
		ID: "run-1", Environment: "prod", Source: "staging", Name: "a", Version: "1.0.0",
		ManifestDigest: digest(1), PolicyDigest: "sha256:policy", Passed: true, Actor: "alice",
		StartedAt: t0.UTC().Truncate(time.Microsecond), DurationMS: 1234,
		Report: json.RawMessage(`{"checks": [{"name": "signature", "status": "passed", "note": "ü \u00e9"}]}`),
	}
	dryRun := registry.GateRun{ID: "run-2", Environment: "prod", Name: "a", Version: "1.1.0", DryRun: true,
		StartedAt: t0.UTC().Truncate(time.Microsecond)} // no digest, no report
	for _, run := range []registry.GateRun{full, dryRun} {
		in := run
		in.StartedAt = t0
		if err := prod.RecordGateRun(ctx, in); err != nil {
			t.Fatalf("RecordGateRun(%s): %v", run.ID, err)
		}
		got, err := prod.GetGateRun(ctx, run.ID)
		if err != nil {
			t.Fatalf("GetGateRun(%s): %v", run.ID, err)
		}
		if diff := cmp.Diff(run, got); diff != "" {
			t.Errorf("GetGateRun(%s) (-want +got):\n%s", run.ID, diff)
		}
	}

	staging := full
	staging.Environment = "staging"
	badReport := full
	badReport.ID, badReport.Report = "run-bad", json.RawMessage(`{"checks":`)
	refused := []struct {
		name string
		env  string
		run  registry.GateRun
		kind registry.ErrorKind
		code string
	}{
		{"duplicate id", "prod", full, registry.Exists, registry.CodeGateRunExists.Name},
		{"duplicate id in another environment", "staging", staging, registry.Exists, registry.CodeGateRunExists.Name},
		{"wrong environment", "prod", staging, registry.Internal, registry.CodeInternal.Name},
		{"invalid report", "prod", badReport, registry.Internal, registry.CodeInternal.Name},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "RecordGateRun", mustEnv(t, s, tc.env).RecordGateRun(ctx, tc.run), tc.kind, tc.code)
		})
	}
	if got, err := prod.GetGateRun(ctx, "run-1"); err != nil || got.Environment != "prod" || got.Source != "staging" {
		t.Errorf("GetGateRun after refused duplicates = %+v, %v; want the original", got, err)
	}
	for _, id := range []string{"run-bad", "missing"} {
		_, err := prod.GetGateRun(ctx, id)
		wantErr(t, "GetGateRun("+id+")", err, registry.NotFound, registry.CodeNotFound.Name)
	}
	_, err := mustEnv(t, s, "staging").GetGateRun(ctx, "run-1")
	wantErr(t, "staging GetGateRun of a prod run", err, registry.NotFound, registry.CodeNotFound.Name)
}

func testNoReleases(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	_, err := mustEnv(t, s, "prod").CurrentRelease(ctx, "a")
	wantErr(t, "CurrentRelease of an unreleased name", err, registry.NotFound, registry.CodeNotFound.Name)
	if got, err := mustEnv(t, s, "prod").ListReleases(ctx, "a"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ListReleases of an unreleased name = %#v, %v; want empty non-nil", got, err)
	}
}

// testPromotionChain: a promotion writes the version, its signatures, its
// evidence, its release and its audit event; releases chain by PreviousID.
func testPromotionChain(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	p1, p2 := promotion("prod", "a", "1.0.0", 1), promotion("prod", "a", "1.1.0", 2)
	r1, created, err := prod.CommitPromotion(ctx, p1)
	if err != nil || !created {
		t.Fatalf("CommitPromotion(1.0.0) = created %v, %v", created, err)
	}
	if r1.ID == 0 || r1.PreviousID != 0 {
		t.Errorf("first release: ID %d PreviousID %d; want an id and no predecessor", r1.ID, r1.PreviousID)
	}
	want1 := p1.Release
	want1.ID, want1.Number, want1.CreatedAt = r1.ID, 1, t0.UTC().Truncate(time.Microsecond)
	if diff := cmp.Diff(want1, r1); diff != "" {
		t.Errorf("first release (-want +got):\n%s", diff)
	}
	r2, created, err := prod.CommitPromotion(ctx, p2)
	if err != nil || !created {
		t.Fatalf("CommitPromotion(1.1.0) = created %v, %v", created, err)
	}
	if r2.ID <= r1.ID || r2.PreviousID != r1.ID {
		t.Errorf("second release: ID %d PreviousID %d; want ID > %d and PreviousID %d", r2.ID, r2.PreviousID, r1.ID, r1.ID)
	}
	cur, err := prod.CurrentRelease(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r2, cur); diff != "" {
		t.Errorf("CurrentRelease (-want +got):\n%s", diff)
	}
	list, err := prod.ListReleases(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]registry.Release{r2, r1}, list); diff != "" {
		t.Errorf("ListReleases (-want +got):\n%s", diff)
	}

	v, err := prod.GetVersion(ctx, "a", "1.0.0")
	if err != nil {
		t.Fatalf("GetVersion of the promoted version: %v", err)
	}
	if diff := cmp.Diff(p1.Version, v); diff != "" {
		t.Errorf("promoted version (-want +got):\n%s", diff)
	}
	evs, err := prod.ListEvidence(ctx, "a", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p1.Evidence, evs); diff != "" {
		t.Errorf("promoted evidence (-want +got):\n%s", diff)
	}
	events, err := prod.QueryAudit(ctx, audit.Filter{Action: "artifact.promote"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Target != "a@1.1.0" || events[1].Target != "a@1.0.0" {
		t.Errorf("audit after two promotions = %+v", events)
	}
}

// testPromotionIdempotent: promoting a version again returns the first
// release and writes nothing but its audit event.
func testPromotionIdempotent(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	first := promotion("prod", "a", "1.0.0", 1)
	r1, _, err := prod.CommitPromotion(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	again := promotion("prod", "a", "1.0.0", 1)
	again.Release.Actor, again.Release.CreatedAt = "bob", t0.Add(time.Hour)
	again.Version.Signatures = append(again.Version.Signatures, registry.Signature{Role: registry.SignedByEnvironment,
		KeyID: "k-rotated", Subject: registry.SubjectManifest, Signature: "MEYCIQ==", Trusted: true, CreatedAt: t0})
	again.Evidence = append(again.Evidence, evidence("prod", "a", "1.0.0", 1, registry.EvidenceProvenance, 7000))
	r, created, err := prod.CommitPromotion(ctx, again)
	if err != nil || created {
		t.Fatalf("repeat CommitPromotion = created %v, %v; want not created, nil", created, err)
	}
	if diff := cmp.Diff(r1, r); diff != "" {
		t.Errorf("repeat returns the first release (-want +got):\n%s", diff)
	}
	if list, _ := prod.ListReleases(ctx, "a"); len(list) != 1 {
		t.Errorf("%d releases after a repeat, want 1", len(list))
	}
	if evs, _ := prod.ListEvidence(ctx, "a", "1.0.0"); len(evs) != len(first.Evidence) {
		t.Errorf("%d evidence documents after a repeat, want %d", len(evs), len(first.Evidence))
	}
	if v, _ := prod.GetVersion(ctx, "a", "1.0.0"); len(v.Signatures) != len(first.Version.Signatures) {
		t.Errorf("%d signatures after a repeat, want %d", len(v.Signatures), len(first.Version.Signatures))
	}
	if n := auditCount(t, prod); n != 2 {
		t.Errorf("%d audit events, want 2 (the repeat is audited)", n)
	}
}

// testPromotionConflict: a promotion whose version exists in the target
// with other content writes nothing at all.
func testPromotionConflict(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	existing := version("prod", "a", "1.0.0", 1)
	if _, _, err := prod.CommitVersion(ctx, existing, event(audit.ActionPublish, "a@1.0.0")); err != nil {
		t.Fatal(err)
	}
	_, _, err := prod.CommitPromotion(ctx, promotion("prod", "a", "1.0.0", 2))
	wantErr(t, "CommitPromotion over other content", err, registry.Exists, registry.CodeVersionExists.Name)

	if got, err := prod.GetVersion(ctx, "a", "1.0.0"); err != nil || got.ManifestDigest != digest(1) || len(got.Signatures) != 0 {
		t.Errorf("version after refused promotion = %+v, %v; want unchanged", got, err)
	}
	if list, err := prod.ListReleases(ctx, "a"); err != nil || len(list) != 0 {
		t.Errorf("releases after refused promotion = %+v, %v; want none", list, err)
	}
	if evs, err := prod.ListEvidence(ctx, "a", "1.0.0"); err != nil || len(evs) != 0 {
		t.Errorf("evidence after refused promotion = %+v, %v; want none", evs, err)
	}
	if n := auditCount(t, prod); n != 1 {
		t.Errorf("%d audit events, want 1 (the refused promotion writes none)", n)
	}
}

// testPromotionRefused: promotions that disagree with the handle or with
// themselves are caller bugs and write nothing.
func testPromotionRefused(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	tests := []struct {
		name   string
		mutate func(p *registry.PromotionCommit)
	}{
		{"version of another environment", func(p *registry.PromotionCommit) { p.Version.Environment = "staging" }},
		{"release of another environment", func(p *registry.PromotionCommit) { p.Release.Environment = "staging" }},
		{"evidence of another environment", func(p *registry.PromotionCommit) { p.Evidence[1].Environment = "staging" }},
		{"rollback action", func(p *registry.PromotionCommit) { p.Release.Action = registry.ReleaseRollback }},
		{"release of another version", func(p *registry.PromotionCommit) { p.Release.Version = "1.1.0" }},
		{"release of another manifest", func(p *registry.PromotionCommit) { p.Release.ManifestDigest = digest(2) }},
		{"evidence of another version", func(p *registry.PromotionCommit) { p.Evidence[0].Version = "1.1.0" }},
		{"evidence of another manifest", func(p *registry.PromotionCommit) { p.Evidence[0].ManifestDigest = digest(2) }},
		{"version without digest", func(p *registry.PromotionCommit) {
			p.Version.ManifestDigest = registry.Release{}.ManifestDigest
			p.Release.ManifestDigest = p.Version.ManifestDigest
			p.Evidence = nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := promotion("prod", "a", "1.0.0", 1)
			tc.mutate(&p)
			_, _, err := prod.CommitPromotion(ctx, p)
			wantErr(t, "CommitPromotion", err, registry.Internal, registry.CodeInternal.Name)
		})
	}
	for _, env := range []string{"prod", "staging"} {
		e := mustEnv(t, s, env)
		if _, err := e.GetVersion(ctx, "a", "1.0.0"); !isKind(err, registry.NotFound, registry.CodeVersionNotFound.Name) {
			t.Errorf("%s GetVersion after refused promotions: %v, want version_not_found", env, err)
		}
		if list, err := e.ListReleases(ctx, "a"); err != nil || len(list) != 0 {
			t.Errorf("%s releases after refused promotions = %+v, %v; want none", env, list, err)
		}
		if n := auditCount(t, e); n != 0 {
			t.Errorf("%s has %d audit events after refused promotions, want 0", env, n)
		}
	}
}

// testPromotionConcurrentIdentical: concurrent promotions of one version
// (as from several replicas) create exactly one release, and every caller
// gets it.
func testPromotionConcurrentIdentical(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	const n = 16
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		rels    = make([]registry.Release, n)
		created = make([]bool, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			p := promotion("prod", "same", "1.0.0", 7)
			p.Release.Actor = fmt.Sprintf("replica-%d", i)
			<-start
			rels[i], created[i], errs[i] = prod.CommitPromotion(ctx, p)
		})
	}
	close(start)
	wg.Wait()
	count := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("promotion %d: %v", i, errs[i])
			continue
		}
		if created[i] {
			count++
		}
	}
	if count != 1 {
		t.Errorf("%d promotions report created, want 1", count)
	}
	list, err := prod.ListReleases(ctx, "same")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d releases, want 1: %+v", len(list), list)
	}
	for i := range n {
		if errs[i] == nil {
			if diff := cmp.Diff(list[0], rels[i]); diff != "" {
				t.Errorf("promotion %d returned another release (-stored +got):\n%s", i, diff)
			}
		}
	}
	if evs, _ := prod.ListEvidence(ctx, "same", "1.0.0"); len(evs) != 2 {
		t.Errorf("%d evidence documents, want 2", len(evs))
	}
	if got := auditCount(t, prod); got != n {
		t.Errorf("%d audit events, want %d (every repeat is audited)", got, n)
	}
}

// testPromotionConcurrentVersions: concurrent promotions of different
// versions of one name still form one chain: each release's PreviousID is
// the release before it.
func testPromotionConcurrentVersions(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	const n = 8
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			p := promotion("prod", "a", fmt.Sprintf("1.%d.0", i), i*10)
			<-start
			_, _, errs[i] = prod.CommitPromotion(ctx, p)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("promotion %d: %v", i, err)
		}
	}
	list, err := prod.ListReleases(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("%d releases, want %d", len(list), n)
	}
	for i, r := range list {
		want := int64(0)
		if i+1 < len(list) {
			want = list[i+1].ID
		}
		if r.PreviousID != want {
			t.Errorf("release %d (%s): PreviousID %d, want %d", r.ID, r.Version, r.PreviousID, want)
		}
	}
	if cur, err := prod.CurrentRelease(ctx, "a"); err != nil || cur.ID != list[0].ID {
		t.Errorf("CurrentRelease = %+v, %v; want release %d", cur, err, list[0].ID)
	}
}

// testReleaseIsolation: releases, evidence, approvals and gate runs of one
// environment are invisible through another, and promoting the same version
// into another environment is independent.
func testReleaseIsolation(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	staging, prod := mustEnv(t, s, "staging"), mustEnv(t, s, "prod")
	if _, _, err := staging.CommitPromotion(ctx, promotion("staging", "a", "1.0.0", 1)); err != nil {
		t.Fatal(err)
	}
	approval := registry.Approval{Environment: "staging", Name: "a", Version: "1.0.0", ManifestDigest: digest(1),
		Actor: "alice", Identity: "alice@example.com", CreatedAt: t0}
	if _, err := staging.AddApproval(ctx, approval, event("artifact.approve", "a@1.0.0")); err != nil {
		t.Fatal(err)
	}
	run := registry.GateRun{ID: "run-staging", Environment: "staging", Name: "a", Version: "1.0.0", StartedAt: t0}
	if err := staging.RecordGateRun(ctx, run); err != nil {
		t.Fatal(err)
	}

	checks := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"CurrentRelease", func(t *testing.T) {
			_, err := prod.CurrentRelease(ctx, "a")
			wantErr(t, "prod CurrentRelease of a staging release", err, registry.NotFound, registry.CodeNotFound.Name)
		}},
		{"ListReleases", func(t *testing.T) {
			if list, err := prod.ListReleases(ctx, "a"); err != nil || len(list) != 0 {
				t.Errorf("prod ListReleases = %v, %v; want empty", list, err)
			}
		}},
		{"ListEvidence", func(t *testing.T) {
			if evs, err := prod.ListEvidence(ctx, "a", "1.0.0"); err != nil || len(evs) != 0 {
				t.Errorf("prod ListEvidence = %v, %v; want empty", evs, err)
			}
		}},
		{"AddEvidence", func(t *testing.T) {
			_, _, err := prod.AddEvidence(ctx, evidence("prod", "a", "1.0.0", 1, registry.EvidenceJUnit, 99), event("evidence.add", "a@1.0.0"))
			wantErr(t, "prod AddEvidence for a staging-only version", err, registry.NotFound, registry.CodeVersionNotFound.Name)
		}},
		{"ListApprovals", func(t *testing.T) {
			if as, err := prod.ListApprovals(ctx, "a", "1.0.0"); err != nil || len(as) != 0 {
				t.Errorf("prod ListApprovals = %v, %v; want empty", as, err)
			}
		}},
		{"GetGateRun", func(t *testing.T) {
			_, err := prod.GetGateRun(ctx, "run-staging")
			wantErr(t, "prod GetGateRun of a staging run", err, registry.NotFound, registry.CodeNotFound.Name)
		}},
		{"PromoteSameVersionIntoProd", func(t *testing.T) {
			r, created, err := prod.CommitPromotion(ctx, promotion("prod", "a", "1.0.0", 1))
			if err != nil || !created || r.PreviousID != 0 {
				t.Errorf("prod CommitPromotion = %+v, created %v, %v; want a first release", r, created, err)
			}
			if list, err := staging.ListReleases(ctx, "a"); err != nil || len(list) != 1 {
				t.Errorf("staging releases after a prod promotion = %v, %v; want 1", list, err)
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.check)
	}
}
