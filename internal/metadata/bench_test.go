package metadata_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/metadata"
)

// The audit and release query benchmark: a trail of 1,000,000 events
// (STAGEGATE_BENCH_EVENTS) and 100,000 releases (STAGEGATE_BENCH_RELEASES)
// in prod, over a year, 1,000 artifact names and 50 actors, then the
// queries operators make, each sampled b.N times with random arguments;
// it reports p50/p95/p99 in milliseconds. Benchmarks run only with -bench:
//
//	go test -run '^$' -bench AuditQueries -benchtime 400x -timeout 60m ./internal/metadata/
//
// (PostgreSQL too when STAGEGATE_TEST_POSTGRES_DSN is set). Seeding is
// bulk: one transaction of prepared inserts for SQLite, COPY for
// PostgreSQL, with real chain hashes. STAGEGATE_BENCH_EXPLAIN=1 logs the
// plan of each query.

const (
	benchNames  = 1000
	benchActors = 50
	benchYear   = 365 * 24 * time.Hour
)

var benchStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func benchSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func BenchmarkAuditQueries(b *testing.B) {
	events := benchSize("STAGEGATE_BENCH_EVENTS", 1_000_000)
	releases := benchSize("STAGEGATE_BENCH_RELEASES", 100_000)
	b.Run("sqlite", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "bench.db")
		s := openBench(b, metadata.DriverSQLite, path)
		raw, err := sql.Open("sqlite", path+"?_pragma=synchronous(off)&_pragma=busy_timeout(10000)")
		if err != nil {
			b.Fatal(err)
		}
		defer raw.Close()
		seedSQLite(b, raw, events, releases)
		runAuditQueries(b, s, raw, metadata.DriverSQLite, events)
	})
	b.Run("postgres", func(b *testing.B) {
		base := os.Getenv(postgresDSNEnv)
		if base == "" {
			b.Skipf("%s is not set", postgresDSNEnv)
		}
		dsn := benchPostgres(b, base)
		s := openBench(b, metadata.DriverPostgres, dsn)
		raw, err := sql.Open("pgx", dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer raw.Close()
		seedPostgres(b, raw, events, releases)
		runAuditQueries(b, s, raw, metadata.DriverPostgres, events)
	})
}

func openBench(b *testing.B, driver, dsn string) *metadata.Store {
	b.Helper()
	s, err := metadata.Open(context.Background(), driver, dsn, []string{"dev", "staging", "prod"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchPostgres creates a database for the benchmark and drops it after.
func benchPostgres(b *testing.B, base string) string {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { admin.Close() })
	name := fmt.Sprintf("stagegate_bench_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		i := strings.LastIndex(base, "/")
		rest := ""
		if q := strings.IndexByte(base[i:], '?'); q >= 0 {
			rest = base[i+q:]
		}
		return base[:i+1] + name + rest
	}
	return base + " dbname=" + name
}

// benchEvent is event i of the seeded trail: times spread over a year in
// id order, names and actors drawn so that each name has ~1,000 events
// and each actor ~20,000.
func benchEvent(i, n int) audit.Event {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	name := fmt.Sprintf("model-%04d", r.IntN(benchNames))
	ev := audit.Event{
		Time:        benchStart.Add(time.Duration(float64(benchYear) * float64(i) / float64(n))),
		Environment: "prod",
		Actor:       fmt.Sprintf("actor-%02d", r.IntN(benchActors)),
		Outcome:     audit.Success,
		RequestID:   fmt.Sprintf("req-%d", i),
	}
	switch k := r.IntN(10); {
	case k < 5:
		ev.Action, ev.Target = "artifact.publish", fmt.Sprintf("%s@1.%d.%d", name, r.IntN(10), r.IntN(100))
		ev.Details = map[string]string{"manifestDigest": fmt.Sprintf("sha256:%064x", i)}
	case k < 8:
		ev.Action, ev.Target = "artifact.promote", fmt.Sprintf("%s@1.%d.%d", name, r.IntN(10), r.IntN(100))
	case k < 9:
		ev.Action, ev.Target, ev.Outcome, ev.ErrorCode = "artifact.promote", fmt.Sprintf("%s@2.0.0", name), audit.Denied, "gate_failed"
	default:
		ev.Action, ev.Target = "key.create", fmt.Sprintf("key_%d", i)
	}
	if i := strings.LastIndexByte(ev.Target, '@'); i > 0 {
		ev.Name, ev.Version = ev.Target[:i], ev.Target[i+1:]
	}
	return ev
}

// benchRows yields the events as rows of audit_events, chained.
func benchRows(n int, row func(ev audit.Event, details string) error) error {
	var head audit.Head
	for i := range n {
		ev := benchEvent(i, n).Link(head)
		head = audit.Head{Seq: ev.Seq, Hash: ev.Hash}
		if err := row(ev, benchDetails(ev)); err != nil {
			return err
		}
	}
	return nil
}

// benchDetails is the details column as the store writes it.
func benchDetails(ev audit.Event) string {
	if ev.Details == nil {
		return "null"
	}
	return fmt.Sprintf(`{"manifestDigest":%q}`, ev.Details["manifestDigest"])
}

// benchRelease is release i (1-based): names round-robin, so each name
// has releases/benchNames of them, spread over the same year.
func benchRelease(i, n int) (name string, number, previous int64, at time.Time, action string) {
	name = fmt.Sprintf("model-%04d", (i-1)%benchNames)
	number = int64((i-1)/benchNames + 1)
	if number > 1 {
		previous = int64(i - benchNames)
	}
	at = benchStart.Add(time.Duration(float64(benchYear) * float64(i) / float64(n)))
	action = "promotion"
	if number%10 == 0 {
		action = "rollback"
	}
	return
}

const benchAuditColumns = `occurred_at, environment, actor, credential_id, action, target, name, version,
	outcome, error_code, request_id, details, seq, prev_hash, hash`

func seedSQLite(b *testing.B, raw *sql.DB, events, releases int) {
	start := time.Now()
	ctx := context.Background()
	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	ins, err := tx.Prepare(`INSERT INTO audit_events (` + benchAuditColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`)
	if err != nil {
		b.Fatal(err)
	}
	if err := benchRows(events, func(ev audit.Event, details string) error {
		_, err := ins.Exec(ev.Time.Format(audit.TimeLayout), ev.Environment, ev.Actor, "", ev.Action, ev.Target,
			ev.Name, ev.Version, string(ev.Outcome), ev.ErrorCode, ev.RequestID, details, ev.Seq, ev.PrevHash, ev.Hash)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	rel, err := tx.Prepare(`INSERT INTO releases (id, environment, name, version, manifest_digest, action, source,
		previous_id, actor, reason, gate_run_id, created_at, number)
		VALUES ($1, 'prod', $2, $3, $4, $5, 'staging', $6, 'actor-01', 'bench', '', $7, $8)`)
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= releases; i++ {
		name, number, previous, at, action := benchRelease(i, releases)
		var prev any
		if previous > 0 {
			prev = previous
		}
		if _, err := rel.Exec(i, name, fmt.Sprintf("1.0.%d", number), fmt.Sprintf("sha256:%064x", i), action, prev,
			at.Format(audit.TimeLayout), number); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := raw.Exec(`ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Logf("sqlite: seeded %d events and %d releases in %s", events, releases, time.Since(start).Round(time.Second))
}

func seedPostgres(b *testing.B, raw *sql.DB, events, releases int) {
	start := time.Now()
	ctx := context.Background()
	conn, err := raw.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		// Streamed: a million rows are never in memory at once.
		var (
			head audit.Head
			i    int
		)
		cols := strings.Fields(strings.ReplaceAll(benchAuditColumns, ",", " "))
		if _, err := pc.CopyFrom(ctx, pgx.Identifier{"audit_events"}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if i == events {
				return nil, nil
			}
			ev := benchEvent(i, events).Link(head)
			head, i = audit.Head{Seq: ev.Seq, Hash: ev.Hash}, i+1
			return []any{ev.Time.Format(audit.TimeLayout), ev.Environment, ev.Actor, "", ev.Action, ev.Target,
				ev.Name, ev.Version, string(ev.Outcome), ev.ErrorCode, ev.RequestID, benchDetails(ev), ev.Seq, ev.PrevHash, ev.Hash}, nil
		})); err != nil {
			return fmt.Errorf("copy audit_events: %w", err)
		}
		var rows [][]any
		for i := 1; i <= releases; i++ {
			name, number, previous, at, action := benchRelease(i, releases)
			var prev any
			if previous > 0 {
				prev = previous
			}
			rows = append(rows, []any{int64(i), "prod", name, fmt.Sprintf("1.0.%d", number), fmt.Sprintf("sha256:%064x", i), action,
				"staging", prev, "actor-01", "bench", "", at.Format(audit.TimeLayout), number})
		}
		_, err := pc.CopyFrom(ctx, pgx.Identifier{"releases"}, []string{"id", "environment", "name", "version", "manifest_digest",
			"action", "source", "previous_id", "actor", "reason", "gate_run_id", "created_at", "number"}, pgx.CopyFromRows(rows))
		if err != nil {
			return fmt.Errorf("copy releases: %w", err)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// What autovacuum does to an insert-only table soon after a bulk load:
	// statistics, and the visibility map index-only scans need.
	if _, err := raw.Exec(`VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Logf("postgres: seeded %d events and %d releases in %s", events, releases, time.Since(start).Round(time.Second))
}

// benchQuery is one kind of query: run issues it with random arguments;
// explain is its SQL for the plan log, and explainSQLite SQLite's when the
// two differ.
type benchQuery struct {
	name          string
	run           func(ctx context.Context, prod *metadata.Env, r *rand.Rand) (int, error)
	explain       string
	explainSQLite string
}

func randName(r *rand.Rand) string  { return fmt.Sprintf("model-%04d", r.IntN(benchNames)) }
func randActor(r *rand.Rand) string { return fmt.Sprintf("actor-%02d", r.IntN(benchActors)) }
func randTime(r *rand.Rand) time.Time {
	return benchStart.Add(time.Duration(r.Int64N(int64(benchYear))))
}

func auditQueries(events int, raw *sql.DB) []benchQuery {
	query := func(mk func(r *rand.Rand) audit.Filter) func(ctx context.Context, prod *metadata.Env, r *rand.Rand) (int, error) {
		return func(ctx context.Context, prod *metadata.Env, r *rand.Rand) (int, error) {
			evs, err := prod.QueryAudit(ctx, mk(r))
			return len(evs), err
		}
	}
	return []benchQuery{
		{"newest", query(func(r *rand.Rand) audit.Filter { return audit.Filter{} }),
			`SELECT * FROM audit_events WHERE environment = 'prod' ORDER BY id DESC LIMIT 100`, ""},
		{"by-name", query(func(r *rand.Rand) audit.Filter { return audit.Filter{Name: randName(r)} }),
			`SELECT * FROM audit_events WHERE environment = 'prod' AND name = 'model-0421' ORDER BY id DESC LIMIT 100`, ""},
		{"by-name-version", query(func(r *rand.Rand) audit.Filter {
			return audit.Filter{Name: randName(r), Version: fmt.Sprintf("1.%d.%d", r.IntN(10), r.IntN(100))}
		}), `SELECT * FROM audit_events WHERE environment = 'prod' AND name = 'model-0421' AND version = '1.3.7' ORDER BY id DESC LIMIT 100`, ""},
		{"by-name-page-2", query(func(r *rand.Rand) audit.Filter {
			return audit.Filter{Name: randName(r), BeforeID: int64(events/2 + r.IntN(events/2))}
		}), `SELECT * FROM audit_events WHERE environment = 'prod' AND name = 'model-0421' AND id < 600000 ORDER BY id DESC LIMIT 100`, ""},
		{"by-actor", query(func(r *rand.Rand) audit.Filter { return audit.Filter{Actor: randActor(r)} }),
			`SELECT * FROM audit_events WHERE environment = 'prod' AND actor = 'actor-07' ORDER BY id DESC LIMIT 100`, ""},
		{"by-actor-denied", query(func(r *rand.Rand) audit.Filter { return audit.Filter{Actor: randActor(r), Outcome: audit.Denied} }),
			`SELECT * FROM audit_events WHERE environment = 'prod' AND actor = 'actor-07' AND outcome = 'denied' ORDER BY id DESC LIMIT 100`, ""},
		{"time-range-day", query(func(r *rand.Rand) audit.Filter {
			since := randTime(r)
			return audit.Filter{Since: since, Until: since.Add(24 * time.Hour)}
		}), `SELECT * FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE environment = 'prod' AND occurred_at >= '2025-06-01T00:00:00.000000Z' AND occurred_at < '2025-06-02T00:00:00.000000Z' ORDER BY id + 0 DESC LIMIT 100) ORDER BY id DESC`, ""},
		{"time-range-month-by-actor", query(func(r *rand.Rand) audit.Filter {
			since := randTime(r)
			return audit.Filter{Actor: randActor(r), Since: since, Until: since.Add(30 * 24 * time.Hour)}
		}), `SELECT * FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE environment = 'prod' AND actor = 'actor-07' AND occurred_at >= '2025-06-01T00:00:00.000000Z' AND occurred_at < '2025-07-01T00:00:00.000000Z' ORDER BY id + 0 DESC LIMIT 100) ORDER BY id DESC`, ""},
		{"chain-head", func(ctx context.Context, prod *metadata.Env, r *rand.Rand) (int, error) {
			_, err := prod.AuditHead(ctx)
			return 1, err
		}, `SELECT seq, hash FROM audit_events WHERE environment = 'prod' AND seq > 0 ORDER BY seq DESC LIMIT 1`, ""},
		{"release-as-of-one-name", func(ctx context.Context, prod *metadata.Env, r *rand.Rand) (int, error) {
			rels, err := prod.ReleasesAt(ctx, randTime(r), randName(r))
			return len(rels), err
		}, `SELECT * FROM releases WHERE environment = 'prod' AND name = 'model-0421' AND created_at <= '2025-06-01T00:00:00.000000Z' ORDER BY created_at DESC, number DESC LIMIT 1`, ""},
		{"release-as-of-all-names", func(ctx context.Context, prod *metadata.Env, r *rand.Rand) (int, error) {
			rels, err := prod.ReleasesAt(ctx, randTime(r), "")
			return len(rels), err
		}, `SELECT r.* FROM releases AS f CROSS JOIN LATERAL (
				SELECT * FROM releases WHERE environment = 'prod' AND name = f.name AND created_at <= '2025-06-01T00:00:00.000000Z'
				ORDER BY created_at DESC, number DESC LIMIT 1) AS r
			WHERE f.environment = 'prod' AND f.number = 1 AND f.created_at <= '2025-06-01T00:00:00.000000Z'
			ORDER BY f.name`,
			`SELECT * FROM releases WHERE id IN (
				SELECT (SELECT id FROM releases AS r
					WHERE r.environment = 'prod' AND r.name = f.name AND r.created_at <= '2025-06-01T00:00:00.000000Z'
					ORDER BY r.created_at DESC, r.number DESC LIMIT 1)
				FROM releases AS f WHERE f.environment = 'prod' AND f.number = 1 AND f.created_at <= '2025-06-01T00:00:00.000000Z')
			ORDER BY name`},
		// The baseline of the one above, in the same run: the GROUP BY that
		// ReleasesAt used before migration 00007, through raw SQL.
		{"release-as-of-all-names-group-by-baseline", func(ctx context.Context, _ *metadata.Env, r *rand.Rand) (int, error) {
			return rawRows(ctx, raw, releasesAtGroupBy, randTime(r).Format(audit.TimeLayout))
		}, strings.ReplaceAll(releasesAtGroupBy, "$1", "'2025-06-01T00:00:00.000000Z'"), ""},
	}
}

// releasesAtGroupBy is how ReleasesAt found the releases of all names
// before migration 00007: every release up to the instant, grouped by name.
const releasesAtGroupBy = `SELECT id, environment, name, version, manifest_digest, action, source, previous_id,
	actor, reason, gate_run_id, created_at, number, triggered_by FROM releases WHERE environment = 'prod' AND id IN (
	SELECT MAX(id) FROM releases WHERE environment = 'prod' AND created_at <= $1 GROUP BY name) ORDER BY name`

// rawRows runs query and reads every column of every row (as bytes, less
// work than the store's scan), returning the row count.
func rawRows(ctx context.Context, raw *sql.DB, query string, args ...any) (int, error) {
	rows, err := raw.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

func runAuditQueries(b *testing.B, s *metadata.Store, raw *sql.DB, driver string, events int) {
	prod, err := s.Env("prod")
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range auditQueries(events, raw) {
		if os.Getenv("STAGEGATE_BENCH_EXPLAIN") == "1" {
			logPlan(b, raw, driver, q)
		}
		b.Run(q.name, func(b *testing.B) {
			ctx := context.Background()
			r := rand.New(rand.NewPCG(42, 42))
			samples := make([]time.Duration, 0, b.N)
			rows := 0
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				n, err := q.run(ctx, prod, r)
				samples = append(samples, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				rows += n
			}
			b.StopTimer()
			slices.Sort(samples)
			pct := func(p float64) float64 {
				return float64(samples[min(len(samples)-1, int(p*float64(len(samples))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
		})
	}
}

func logPlan(b *testing.B, raw *sql.DB, driver string, q benchQuery) {
	stmt := "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + q.explain
	if driver == metadata.DriverSQLite {
		sqlite := q.explain
		if q.explainSQLite != "" {
			sqlite = q.explainSQLite
		}
		stmt = "EXPLAIN QUERY PLAN " + sqlite
	}
	rows, err := raw.Query(stmt)
	if err != nil {
		b.Fatalf("%s: %v", stmt, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			b.Fatal(err)
		}
		lines = append(lines, fmt.Sprint(vals[len(vals)-1]))
	}
	b.Logf("%s plan of %s:\n  %s", driver, q.name, strings.Join(lines, "\n  "))
}
