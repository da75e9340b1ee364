package metadatatest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/metadata"
)

// exportAll returns every event of env's trail ("" is the unbound one),
// oldest first, through the export.
func exportAll(t *testing.T, s *metadata.Store, env string, f audit.Filter) []audit.Event {
	t.Helper()
	var out []audit.Event
	collect := func(ev audit.Event) error { out = append(out, ev); return nil }
	var err error
	if env == "" {
		err = s.ExportUnboundAudit(context.Background(), f, collect)
	} else {
		err = mustEnv(t, s, env).ExportAudit(context.Background(), f, collect)
	}
	if err != nil {
		t.Fatalf("export %q: %v", env, err)
	}
	return out
}

// checkAuditChain walks env's whole trail and fails t at the first broken link;
// it returns the number of events.
func checkAuditChain(t *testing.T, s *metadata.Store, env string) int {
	t.Helper()
	events := exportAll(t, s, env, audit.Filter{})
	c := audit.NewChain(env)
	for _, ev := range events {
		if err := c.Next(ev); err != nil {
			t.Fatalf("chain of %q: %v", env, err)
		}
	}
	if env != "" {
		head, err := mustEnv(t, s, env).AuditHead(context.Background())
		if err != nil {
			t.Fatalf("AuditHead(%s): %v", env, err)
		}
		if head != c.Head() {
			t.Errorf("AuditHead(%s) = %+v, the trail ends at %+v", env, head, c.Head())
		}
	}
	return len(events)
}

func ids(evs []audit.Event) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// testAuditNameVersion: name and version come from a "name@version"
// target, the version canonical, and match exactly.
func testAuditNameVersion(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	seed := []struct {
		target, name, version string
	}{
		{"fraud-detector@1.0.0", "fraud-detector", "1.0.0"},
		{"fraud-detector@v1.1.0", "fraud-detector", "1.1.0"},
		{"fraud-detector-v2@1.0.0", "fraud-detector-v2", "1.0.0"},
		{"team/fraud-detector@1.0.0", "team/fraud-detector", "1.0.0"},
		{"fraud-detector@latest", "fraud-detector", ""}, // a refused publish
		{"fraud-detector", "", ""},                      // a key name
		{"sha256:" + fmt.Sprintf("%064x", 1), "", ""},   // a blob
		{"Fraud-Detector@1.0.0", "", ""},                // not a name
		{"fraud-detector@1.0.0-rc.1+build.5", "fraud-detector", "1.0.0-rc.1+build.5"},
	}
	evIDs := make([]int64, len(seed))
	for i, sd := range seed {
		ev := auditEvent("dev", "artifact.publish", sd.target)
		ev.Name, ev.Version = "ignored", "9.9.9" // the store derives them
		id, err := dev.AppendAudit(ctx, ev)
		if err != nil {
			t.Fatalf("AppendAudit(%s): %v", sd.target, err)
		}
		evIDs[i] = id
		if _, err := mustEnv(t, s, "prod").AppendAudit(ctx, auditEvent("prod", "artifact.publish", sd.target)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := dev.QueryAudit(ctx, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range all {
		sd := seed[len(seed)-1-i]
		if ev.Name != sd.name || ev.Version != sd.version {
			t.Errorf("target %q stored as name %q version %q, want %q %q", sd.target, ev.Name, ev.Version, sd.name, sd.version)
		}
	}
	tests := []struct {
		name string
		f    audit.Filter
		want []int // indexes into seed, newest first
	}{
		{"name", audit.Filter{Name: "fraud-detector"}, []int{8, 4, 1, 0}},
		{"name is not a substring match", audit.Filter{Name: "fraud"}, []int{}},
		{"name with a slash", audit.Filter{Name: "team/fraud-detector"}, []int{3}},
		{"name and version", audit.Filter{Name: "fraud-detector", Version: "1.0.0"}, []int{0}},
		{"version across names", audit.Filter{Version: "1.0.0"}, []int{3, 2, 0}},
		{"canonical version of a v-prefixed target", audit.Filter{Version: "1.1.0"}, []int{1}},
		{"pre-release with build metadata", audit.Filter{Version: "1.0.0-rc.1+build.5"}, []int{8}},
		{"with other filters and a cursor", audit.Filter{Name: "fraud-detector", Action: "artifact.publish", BeforeID: evIDs[4], Limit: 1}, []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dev.QueryAudit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]int64, len(tc.want))
			for i, j := range tc.want {
				want[i] = evIDs[j]
			}
			if diff := cmp.Diff(want, ids(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			exported := exportAll(t, s, "dev", tc.f)
			slices.Reverse(want)
			if tc.f.BeforeID == 0 {
				if diff := cmp.Diff(want, ids(exported)); diff != "" {
					t.Errorf("export ids (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// testAuditChain: every way an event is written (alone, with a version,
// a key, a promotion; unbound refusals) chains it, per environment, and
// the head is the last event.
func testAuditChain(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev, prod := mustEnv(t, s, "dev"), mustEnv(t, s, "prod")
	if head, err := dev.AuditHead(ctx); err != nil || head != (audit.Head{}) {
		t.Fatalf("AuditHead of an empty trail = %+v, %v", head, err)
	}
	steps := []func() error{
		func() error {
			_, err := dev.AppendAudit(ctx, auditEvent("dev", "artifact.pull", "a@1.0.0"))
			return err
		},
		func() error {
			_, _, err := dev.CommitVersion(ctx, version("dev", "a", "1.0.0", 1), event("artifact.publish", "a@1.0.0"))
			return err
		},
		func() error {
			return dev.CreateKey(ctx, auth.Key{ID: "k1", Name: "ci", Environment: "dev", Role: auth.RolePublisher,
				TokenHash: "h1", CreatedAt: t0}, event("key.create", "ci"))
		},
		func() error { return dev.RevokeKey(ctx, "k1", t0, event("key.revoke", "k1")) },
		func() error { _, _, err := prod.CommitPromotion(ctx, promotion("prod", "a", "1.0.0", 1)); return err },
		func() error { _, err := s.AppendUnboundAudit(ctx, event("authenticate", "")); return err },
		func() error {
			_, err := prod.AppendAudit(ctx, auditEvent("prod", "artifact.pull", "a@1.0.0"))
			return err
		},
		func() error { _, err := s.AppendUnboundAudit(ctx, event("authenticate", "")); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	for env, want := range map[string]int{"dev": 4, "prod": 2, "staging": 0, "": 2} {
		if n := checkAuditChain(t, s, env); n != want {
			t.Errorf("chain of %q has %d events, want %d", env, n, want)
		}
	}
	evs := exportAll(t, s, "dev", audit.Filter{})
	if evs[0].Seq != 1 || evs[0].PrevHash != "" || evs[1].PrevHash != evs[0].Hash {
		t.Errorf("first links: %+v", evs[:2])
	}
}

// testAuditChainConcurrent: concurrent writers of several environments
// (and of the unbound trail) each extend their own chain without a fork or
// a gap, and ids follow the chain.
func testAuditChainConcurrent(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	const writers, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				target := fmt.Sprintf("w%d@1.0.%d", w, i)
				switch w % 3 {
				case 0:
					_, err := mustEnv(t, s, "dev").AppendAudit(ctx, auditEvent("dev", "artifact.pull", target))
					errs <- err
				case 1:
					_, _, err := mustEnv(t, s, "dev").CommitVersion(ctx, version("dev", fmt.Sprintf("w%d", w), fmt.Sprintf("1.0.%d", i), w*100+i),
						event("artifact.publish", target))
					errs <- err
				case 2:
					_, err := mustEnv(t, s, "prod").AppendAudit(ctx, auditEvent("prod", "artifact.pull", target))
					errs <- err
				}
				_, err := s.AppendUnboundAudit(ctx, event("authenticate", ""))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent append: %v", err)
		}
	}
	for env, want := range map[string]int{"dev": 4 * each, "prod": 2 * each, "": writers * each} {
		if n := checkAuditChain(t, s, env); n != want {
			t.Errorf("chain of %q has %d events, want %d", env, n, want)
		}
	}
}

// testAuditCursorConcurrent: paging newest first while events are being
// appended neither skips nor repeats one: the pages hold exactly the
// events up to the first page's newest.
func testAuditCursorConcurrent(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	for i := range 60 {
		if _, err := dev.AppendAudit(ctx, auditEvent("dev", "artifact.pull", fmt.Sprintf("a@1.0.%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		appended atomic.Int64
	)
	for range 3 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if _, err := dev.AppendAudit(ctx, auditEvent("dev", "artifact.pull", fmt.Sprintf("b@2.0.%d", i))); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				appended.Add(1)
			}
		})
	}
	var (
		paged []int64
		top   int64
		f     = audit.Filter{Limit: 7}
	)
	for range 1000 {
		page, err := dev.QueryAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if top == 0 {
			top = page[0].ID
		}
		paged = append(paged, ids(page)...)
		f.BeforeID = page[len(page)-1].ID
		time.Sleep(time.Millisecond) // let writers in between pages
	}
	stop.Store(true)
	wg.Wait()
	var want []int64
	for _, ev := range exportAll(t, s, "dev", audit.Filter{}) {
		if ev.ID <= top {
			want = append(want, ev.ID)
		}
	}
	slices.Reverse(want)
	if diff := cmp.Diff(want, paged); diff != "" {
		t.Errorf("paged ids (-all up to the first page's newest +paged), %d appended meanwhile:\n%s", appended.Load(), diff)
	}
	checkAuditChain(t, s, "dev")
}

// testAuditExport: the export is oldest first, in batches, filtered, ends
// at the newest event when it starts, and stops at the callback's error.
func testAuditExport(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev := mustEnv(t, s, "dev")
	const n = 1203 // more than two of the store's batches
	for i := range n {
		ev := auditEvent("dev", "artifact.pull", fmt.Sprintf("m%d@1.0.0", i%3))
		ev.Time = t0.Add(time.Duration(i) * time.Second)
		if _, err := dev.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	all := exportAll(t, s, "dev", audit.Filter{})
	if len(all) != n || !slices.IsSortedFunc(all, func(a, b audit.Event) int { return int(a.ID - b.ID) }) {
		t.Fatalf("export returned %d events (sorted %v), want %d oldest first", len(all), slices.IsSortedFunc(all, func(a, b audit.Event) int { return int(a.ID - b.ID) }), n)
	}
	if got := exportAll(t, s, "staging", audit.Filter{}); len(got) != 0 {
		t.Errorf("staging exports %d of dev's events", len(got))
	}
	ranged := exportAll(t, s, "dev", audit.Filter{Since: t0.Add(100 * time.Second), Until: t0.Add(700 * time.Second)})
	if len(ranged) != 600 || ranged[0].ID != all[100].ID || ranged[599].ID != all[699].ID {
		t.Errorf("since/until export: %d events from id %d, want 600 from %d", len(ranged), ranged[0].ID, all[100].ID)
	}
	if byName := exportAll(t, s, "dev", audit.Filter{Name: "m1", Limit: 1, BeforeID: 1}); len(byName) != n/3 {
		t.Errorf("export by name: %d events, want %d (Limit and BeforeID do not apply)", len(byName), n/3)
	}

	// Events appended during the export are not part of it.
	seen := 0
	err := dev.ExportAudit(ctx, audit.Filter{}, func(audit.Event) error {
		seen++
		if seen%400 == 1 {
			if _, err := dev.AppendAudit(ctx, auditEvent("dev", "artifact.pull", "late@1.0.0")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || seen != n {
		t.Errorf("export during appends saw %d events (%v), want the %d there were when it started", seen, err, n)
	}

	stop := errors.New("enough")
	seen = 0
	err = dev.ExportAudit(ctx, audit.Filter{}, func(audit.Event) error {
		if seen++; seen == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 10 {
		t.Errorf("export after the callback's error: seen %d, err %v", seen, err)
	}
	checkAuditChain(t, s, "dev")
}

// RunAuditReplicaSuite: several Stores on one database (replicas) append
// to one environment's chain at once, and the chain has neither a fork nor
// a gap. driver and dsn must name a fresh database only this test uses.
func RunAuditReplicaSuite(t *testing.T, driver, dsn string) {
	ctx := context.Background()
	stores := make([]*metadata.Store, 3)
	for i := range stores {
		stores[i] = mustOpen(t, driver, dsn)
		t.Cleanup(func() { stores[i].Close() })
	}
	const perStore, workers = 30, 2
	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*workers*perStore)
	for i, s := range stores {
		for w := range workers {
			wg.Go(func() {
				for j := range perStore {
					target := fmt.Sprintf("r%d-%d@1.0.%d", i, w, j)
					if j%5 == 0 {
						// A key's transaction holds its own rows too.
						id := fmt.Sprintf("k-%d-%d-%d", i, w, j)
						errs <- mustEnv(t, s, "prod").CreateKey(ctx, auth.Key{ID: id, Name: id, Environment: "prod",
							Role: auth.RoleReader, TokenHash: "h" + id, CreatedAt: t0}, event("key.create", id))
						continue
					}
					_, err := mustEnv(t, s, "prod").AppendAudit(ctx, auditEvent("prod", "artifact.pull", target))
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("append through a replica: %v", err)
		}
	}
	if n := checkAuditChain(t, stores[0], "prod"); n != len(stores)*workers*perStore {
		t.Errorf("chain has %d events, want %d", n, len(stores)*workers*perStore)
	}
}

// RunAppendOnlySuite checks, on a fresh database that only this test uses,
// that the database itself refuses to change audit events and releases:
// raw is a second connection to it, as anyone with database access has.
func RunAppendOnlySuite(t *testing.T, driver, dsn string, raw *sql.DB) {
	ctx := context.Background()
	s := mustOpen(t, driver, dsn)
	defer s.Close()
	if _, err := mustEnv(t, s, "dev").AppendAudit(ctx, auditEvent("dev", "artifact.pull", "a@1.0.0")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := mustEnv(t, s, "prod").CommitPromotion(ctx, promotion("prod", "a", "1.0.0", 1)); err != nil {
		t.Fatal(err)
	}
	refused := []string{
		`UPDATE audit_events SET actor = 'mallory'`,
		`UPDATE audit_events SET outcome = 'success' WHERE id = (SELECT MIN(id) FROM audit_events)`,
		`DELETE FROM audit_events`,
		`DELETE FROM audit_events WHERE id = (SELECT MAX(id) FROM audit_events)`,
		// Sealing is for rows without a hash; a sealed row cannot be re-sealed.
		`UPDATE audit_events SET hash = 'sha256:00', prev_hash = ''`,
		`UPDATE releases SET reason = 'nothing to see'`,
		`UPDATE releases SET version = '0.0.1'`,
		`DELETE FROM releases`,
	}
	if driver == metadata.DriverPostgres {
		refused = append(refused, `TRUNCATE audit_events`, `TRUNCATE releases CASCADE`)
	}
	for _, stmt := range refused {
		t.Run(stmt, func(t *testing.T) {
			_, err := raw.ExecContext(ctx, stmt)
			if err == nil {
				t.Fatalf("the database accepted %s", stmt)
			}
			t.Logf("refused: %v", err)
		})
	}
	var events, releases int
	if err := raw.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM audit_events), (SELECT COUNT(*) FROM releases)`).Scan(&events, &releases); err != nil {
		t.Fatal(err)
	}
	if events != 2 || releases != 1 {
		t.Errorf("after the refusals: %d events and %d releases, want 2 and 1", events, releases)
	}
	checkAuditChain(t, s, "dev")
	checkAuditChain(t, s, "prod")
}

// RunLegacySealSuite: events written before the chain existed (empty hash)
// are chained when a Store next opens the database, in id order, and the
// database allows no other change to them. raw is a second connection to
// dsn, a fresh database only this test uses.
func RunLegacySealSuite(t *testing.T, driver, dsn string, raw *sql.DB) {
	ctx := context.Background()
	mustOpen(t, driver, dsn).Close() // schema only
	legacy := []struct{ env, target string }{
		{"dev", "a@1.0.0"}, {"", ""}, {"dev", "a@v1.1.0"}, {"prod", "key-1"}, {"dev", "b@2.0.0"},
	}
	for i, l := range legacy {
		if _, err := raw.ExecContext(ctx, `INSERT INTO audit_events (occurred_at, environment, actor, credential_id,
				action, target, outcome, error_code, request_id, details)
			VALUES ($1, $2, 'old', 'k-old', 'artifact.publish', $3, 'success', '', $4, 'null')`,
			t0.UTC().Add(time.Duration(i)*time.Minute).Format(audit.TimeLayout), l.env, l.target, fmt.Sprint("req-", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Sealing must not be a way to change what an event says.
	if _, err := raw.ExecContext(ctx, `UPDATE audit_events SET actor = 'mallory', seq = 1, hash = 'sha256:00' WHERE environment = 'dev'`); err == nil {
		t.Fatal("the database let a legacy event's content change with its seal")
	}
	s := mustOpen(t, driver, dsn)
	defer s.Close()
	for env, want := range map[string]int{"dev": 3, "prod": 1, "": 1} {
		if n := checkAuditChain(t, s, env); n != want {
			t.Errorf("sealed chain of %q has %d events, want %d", env, n, want)
		}
	}
	dev := exportAll(t, s, "dev", audit.Filter{})
	if dev[1].Name != "a" || dev[1].Version != "1.1.0" || dev[0].Actor != "old" {
		t.Errorf("sealed legacy event = %+v", dev[1])
	}
	// New events continue the sealed chain; reopening seals nothing twice.
	if _, err := mustEnv(t, s, "dev").AppendAudit(ctx, auditEvent("dev", "artifact.pull", "a@1.0.0")); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, driver, dsn)
	defer s2.Close()
	if n := checkAuditChain(t, s2, "dev"); n != 4 {
		t.Errorf("chain after a new event and a reopen: %d events, want 4", n)
	}
}

// RunTamperSuite: someone with database access disables the append-only
// triggers, as its owner can, and edits an event in dev, deletes one in
// staging and swaps two in prod; the chain check catches each, at the
// event where it happened. raw is a second connection to dsn, a fresh
// database only this test uses.
func RunTamperSuite(t *testing.T, driver, dsn string, raw *sql.DB) {
	ctx := context.Background()
	s := mustOpen(t, driver, dsn)
	defer s.Close()
	for _, env := range environments() {
		for i := range 6 {
			if _, err := mustEnv(t, s, env).AppendAudit(ctx, auditEvent(env, "artifact.pull", fmt.Sprintf("a@1.0.%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	disable := []string{`DROP TRIGGER audit_events_no_update`, `DROP TRIGGER audit_events_no_delete`}
	if driver == metadata.DriverPostgres {
		disable = []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`}
	}
	idOf := func(env string, seq int) int64 {
		var id int64
		if err := raw.QueryRowContext(ctx, `SELECT id FROM audit_events WHERE environment = $1 AND seq = $2`, env, seq).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a, b := idOf("prod", 2), idOf("prod", 3)
	tamper := append(disable,
		fmt.Sprintf(`UPDATE audit_events SET actor = 'mallory' WHERE id = %d`, idOf("dev", 3)),
		fmt.Sprintf(`DELETE FROM audit_events WHERE id = %d`, idOf("staging", 4)),
		fmt.Sprintf(`UPDATE audit_events SET id = -1 WHERE id = %d`, a),
		fmt.Sprintf(`UPDATE audit_events SET id = %d WHERE id = %d`, a, b),
		fmt.Sprintf(`UPDATE audit_events SET id = %d WHERE id = -1`, b),
	)
	for _, stmt := range tamper {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	tests := []struct {
		env     string
		seq     int64
		problem string
	}{
		{"dev", 3, audit.ProblemHash},
		{"staging", 5, audit.ProblemSequence},
		{"prod", 3, audit.ProblemSequence}, // seq 3 now comes before seq 2
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			c := audit.NewChain(tc.env)
			var broken *audit.BrokenLink
			for _, ev := range exportAll(t, s, tc.env, audit.Filter{}) {
				if err := c.Next(ev); err != nil {
					if !errors.As(err, &broken) {
						t.Fatal(err)
					}
					break
				}
			}
			if broken == nil || broken.Seq != tc.seq || broken.Problem != tc.problem {
				t.Fatalf("broken link %+v, want %s at seq %d", broken, tc.problem, tc.seq)
			}
			t.Logf("caught: %v", broken)
		})
	}
}
