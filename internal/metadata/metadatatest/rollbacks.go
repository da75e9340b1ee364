package metadatatest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/registry"
)

// rollback builds the rollback of name in env to ver, whose content is seed.
func rollback(env, name, ver string, seed int, at time.Time) registry.RollbackCommit {
	return registry.RollbackCommit{
		Release: registry.Release{
			Environment:    env,
			Name:           name,
			Version:        ver,
			ManifestDigest: digest(seed),
			Action:         registry.ReleaseRollback,
			Actor:          "oncall",
			Reason:         "error rate",
			GateRunID:      "run-rollback-" + ver,
			CreatedAt:      at,
		},
		Event: event("artifact.rollback", name+"@"+ver),
	}
}

// promoteAt commits the promotion of name@ver (content seed) into env at at.
func promoteAt(t *testing.T, e *metadata.Env, name, ver string, seed int, at time.Time) registry.Release {
	t.Helper()
	p := promotion(e.Name(), name, ver, seed)
	p.Release.CreatedAt = at
	r, created, err := e.CommitPromotion(context.Background(), p)
	if err != nil || !created {
		t.Fatalf("CommitPromotion(%s@%s) = created %v, %v", name, ver, created, err)
	}
	return r
}

// testRollbackChain: a rollback appends a release after the current one,
// numbered per name; rolling back to what is current appends nothing.
func testRollbackChain(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	base := t0.UTC().Truncate(time.Microsecond)
	r1 := promoteAt(t, prod, "a", "1.0.0", 1, base)
	r2 := promoteAt(t, prod, "a", "1.1.0", 2, base.Add(time.Minute))
	other := promoteAt(t, prod, "b", "1.0.0", 9, base) // numbers are per name
	if r1.Number != 1 || r2.Number != 2 || other.Number != 1 {
		t.Fatalf("numbers %d, %d and b's %d; want 1, 2 and 1", r1.Number, r2.Number, other.Number)
	}

	c := rollback("prod", "a", "1.0.0", 1, base.Add(2*time.Minute))
	c.ExpectedCurrentID = r2.ID
	c.Release.TriggeredBy = "alertmanager:abc"
	r3, created, err := prod.CommitRollback(ctx, c)
	if err != nil || !created {
		t.Fatalf("CommitRollback = created %v, %v", created, err)
	}
	want := c.Release
	want.ID, want.PreviousID, want.Number = r3.ID, r2.ID, 3
	if diff := cmp.Diff(want, r3); diff != "" {
		t.Errorf("rollback release (-want +got):\n%s", diff)
	}
	if cur, err := prod.CurrentRelease(ctx, "a"); err != nil || cur.ID != r3.ID {
		t.Errorf("CurrentRelease = %+v, %v; want the rollback %d", cur, err, r3.ID)
	}

	// To what is current: the current release, nothing appended but the event.
	again := rollback("prod", "a", "1.0.0", 1, base.Add(3*time.Minute))
	again.ExpectedCurrentID = r2.ID // stale, but the target is current anyway
	r, created, err := prod.CommitRollback(ctx, again)
	if err != nil || created {
		t.Fatalf("repeat CommitRollback = created %v, %v; want not created", created, err)
	}
	if diff := cmp.Diff(r3, r); diff != "" {
		t.Errorf("repeat returns the current release (-want +got):\n%s", diff)
	}

	// A rollback to 1.1.0 (released before) appends release 4, forced by
	// an admin past a freeze window: the release row keeps that.
	forced := rollback("prod", "a", "1.1.0", 2, base.Add(4*time.Minute))
	forced.Release.Forced = true
	r4, created, err := prod.CommitRollback(ctx, forced)
	if err != nil || !created || r4.Number != 4 || r4.PreviousID != r3.ID || !r4.Forced {
		t.Fatalf("second rollback = %+v, created %v, %v; want release 4 after %d", r4, created, err, r3.ID)
	}
	list, err := prod.ListReleases(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]registry.Release{r4, r3, r2, r1}, list); diff != "" {
		t.Errorf("ListReleases (-want +got):\n%s", diff)
	}
	events, err := prod.QueryAudit(ctx, audit.Filter{Action: "artifact.rollback"})
	if err != nil || len(events) != 3 {
		t.Errorf("rollback audit events = %d, %v; want 3 (the repeat is audited)", len(events), err)
	}
}

// testRollbackRefused: rollbacks the store must refuse write nothing.
func testRollbackRefused(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	base := t0.UTC().Truncate(time.Microsecond)
	r1 := promoteAt(t, prod, "a", "1.0.0", 1, base)
	promoteAt(t, prod, "a", "1.1.0", 2, base.Add(time.Minute))

	stale := rollback("prod", "a", "1.0.0", 1, base)
	stale.ExpectedCurrentID = r1.ID
	staging := rollback("staging", "a", "1.0.0", 1, base)
	promo := rollback("prod", "a", "1.0.0", 1, base)
	promo.Release.Action = registry.ReleasePromotion
	withSource := rollback("prod", "a", "1.0.0", 1, base)
	withSource.Release.Source = "staging"
	tests := []struct {
		name string
		c    registry.RollbackCommit
		kind registry.ErrorKind
		code string
	}{
		{"current changed", stale, registry.Conflict, registry.CodeReleaseChanged.Name},
		{"never released", rollback("prod", "a", "0.9.0", 3, base), registry.Conflict, registry.CodeNotEligible.Name},
		{"other content", rollback("prod", "a", "1.0.0", 4, base), registry.Conflict, registry.CodeNotEligible.Name},
		{"unknown name", rollback("prod", "zzz", "1.0.0", 1, base), registry.Conflict, registry.CodeNotEligible.Name},
		{"other environment", staging, registry.Internal, registry.CodeInternal.Name},
		{"promotion action", promo, registry.Internal, registry.CodeInternal.Name},
		{"with a source", withSource, registry.Internal, registry.CodeInternal.Name},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := prod.CommitRollback(ctx, tc.c)
			wantErr(t, "CommitRollback", err, tc.kind, tc.code)
		})
	}
	if list, _ := prod.ListReleases(ctx, "a"); len(list) != 2 {
		t.Errorf("%d releases after refused rollbacks, want 2", len(list))
	}
	if n := auditCount(t, prod); n != 2 {
		t.Errorf("%d audit events after refused rollbacks, want 2 (the promotions')", n)
	}
}

// testReleasePages: history pages by number, newest first.
func testReleasePages(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	base := t0.UTC().Truncate(time.Microsecond)
	for i := range 5 {
		promoteAt(t, prod, "a", fmt.Sprintf("1.%d.0", i), i+1, base.Add(time.Duration(i)*time.Minute))
	}
	numbers := func(rs []registry.Release) []int64 {
		out := []int64{}
		for _, r := range rs {
			out = append(out, r.Number)
		}
		return out
	}
	tests := []struct {
		name string
		page registry.ReleasePage
		want []int64
	}{
		{"default", registry.ReleasePage{}, []int64{5, 4, 3, 2, 1}},
		{"first page", registry.ReleasePage{Limit: 2}, []int64{5, 4}},
		{"next page", registry.ReleasePage{Limit: 2, Before: 4}, []int64{3, 2}},
		{"last page", registry.ReleasePage{Limit: 2, Before: 2}, []int64{1}},
		{"past the end", registry.ReleasePage{Limit: 2, Before: 1}, []int64{}},
		{"over the maximum", registry.ReleasePage{Limit: registry.MaxReleasePage + 1}, []int64{5, 4, 3, 2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := prod.PageReleases(ctx, "a", tc.page)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, numbers(got)); diff != "" {
				t.Errorf("PageReleases(%+v) numbers (-want +got):\n%s", tc.page, diff)
			}
		})
	}
	if got, err := mustEnv(t, s, "staging").PageReleases(ctx, "a", registry.ReleasePage{}); err != nil || got == nil || len(got) != 0 {
		t.Errorf("staging PageReleases = %v, %v; want empty non-nil", got, err)
	}
}

// testReleasesAt: the release current at an instant, per name.
func testReleasesAt(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	base := t0.UTC().Truncate(time.Microsecond)
	a1 := promoteAt(t, prod, "a", "1.0.0", 1, base)
	b1 := promoteAt(t, prod, "b", "2.0.0", 5, base.Add(30*time.Second))
	a2 := promoteAt(t, prod, "a", "1.1.0", 2, base.Add(time.Minute))
	a3, _, err := prod.CommitRollback(ctx, rollback("prod", "a", "1.0.0", 1, base.Add(2*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	promoteAt(t, mustEnv(t, s, "staging"), "c", "1.0.0", 7, base) // another environment

	ids := func(rs []registry.Release) []int64 {
		out := []int64{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		name string
		at   time.Time
		only string
		want []int64
	}{
		{"before the first release", base.Add(-time.Nanosecond), "", []int64{}},
		{"at the first release", base, "", []int64{a1.ID}},
		{"between", base.Add(45 * time.Second), "", []int64{a1.ID, b1.ID}},
		{"after the promotion", base.Add(90 * time.Second), "", []int64{a2.ID, b1.ID}},
		{"after the rollback", base.Add(time.Hour), "", []int64{a3.ID, b1.ID}},
		{"one name", base.Add(90 * time.Second), "a", []int64{a2.ID}},
		{"one name before its first release", base.Add(10 * time.Second), "b", []int64{}},
		{"unknown name", base.Add(time.Hour), "zzz", []int64{}},
		{"sub-microsecond", base.Add(time.Minute - time.Nanosecond), "a", []int64{a1.ID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := prod.ReleasesAt(ctx, tc.at, tc.only)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
				t.Errorf("ReleasesAt(%s, %q) ids (-want +got):\n%s", tc.at.Format(time.RFC3339Nano), tc.only, diff)
			}
		})
	}
}

// testReleaseTimesFollowTheChain: a writer that took its time before an
// earlier-dated writer committed does not date its release before the one
// it supersedes.
func testReleaseTimesFollowTheChain(t *testing.T, s *metadata.Store) {
	prod := mustEnv(t, s, "prod")
	base := t0.UTC().Truncate(time.Microsecond)
	r1 := promoteAt(t, prod, "a", "1.0.0", 1, base.Add(time.Minute))
	p := promotion("prod", "a", "1.1.0", 2)
	p.Release.CreatedAt = base // decided earlier, committed later
	r2, _, err := prod.CommitPromotion(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.CreatedAt.Equal(r1.CreatedAt) {
		t.Errorf("later release dated %s, before the release it supersedes (%s)", r2.CreatedAt, r1.CreatedAt)
	}
	// Two releases of one instant: the later in the chain was current then.
	for _, only := range []string{"a", ""} {
		got, err := prod.ReleasesAt(context.Background(), r1.CreatedAt, only)
		if err != nil || len(got) != 1 || got[0].ID != r2.ID {
			t.Errorf("ReleasesAt(%s, %q) = %+v, %v; want release %d only", r1.CreatedAt, only, got, err, r2.ID)
		}
	}
}

// testRollbackRacesPromotion: rollbacks and promotions of one name racing
// each other (as from several replicas) form one chain: numbers 1..n with
// no gap or repeat, each release superseding the one before it, and every
// writer either wins its slot or is told the release changed.
func testRollbackRacesPromotion(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	prod := mustEnv(t, s, "prod")
	base := t0.UTC().Truncate(time.Microsecond)
	r1 := promoteAt(t, prod, "a", "1.0.0", 1, base)
	r2 := promoteAt(t, prod, "a", "1.1.0", 2, base.Add(time.Second))
	const n = 12
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			switch i % 3 {
			case 0: // a promotion of a new version
				_, _, errs[i] = prod.CommitPromotion(ctx, promotion("prod", "a", fmt.Sprintf("2.%d.0", i), 100+i))
			case 1: // a rollback to a named version
				target, seed := "1.0.0", 1
				if i%2 == 0 {
					target, seed = "1.1.0", 2
				}
				_, _, errs[i] = prod.CommitRollback(ctx, rollback("prod", "a", target, seed, base.Add(time.Minute)))
			default: // a default rollback, decided against release 2
				c := rollback("prod", "a", r1.Version, 1, base.Add(time.Minute))
				c.ExpectedCurrentID = r2.ID
				_, _, errs[i] = prod.CommitRollback(ctx, c)
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil && !isKind(err, registry.Conflict, registry.CodeReleaseChanged.Name) {
			t.Errorf("writer %d: %v; want success or release_changed", i, err)
		}
	}
	checkChain(t, prod, "a")
}

// checkChain asserts that name's releases in e form one chain numbered 1..n.
func checkChain(t *testing.T, e *metadata.Env, name string) {
	t.Helper()
	list, err := e.ListReleases(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range list {
		wantNumber, wantPrevious := int64(len(list)-i), int64(0)
		if i+1 < len(list) {
			wantPrevious = list[i+1].ID
			if r.Version == list[i+1].Version {
				t.Errorf("releases %d and %d both serve %s", r.Number, list[i+1].Number, r.Version)
			}
			if r.CreatedAt.Before(list[i+1].CreatedAt) {
				t.Errorf("release %d is dated before release %d", r.Number, list[i+1].Number)
			}
		}
		if r.Number != wantNumber || r.PreviousID != wantPrevious {
			t.Errorf("release %d (%s %s): number %d, previous %d; want number %d, previous %d",
				r.ID, r.Action, r.Version, r.Number, r.PreviousID, wantNumber, wantPrevious)
		}
	}
}
