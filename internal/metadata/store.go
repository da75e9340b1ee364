// Package metadata is stagegate's SQL store: the versions index, evidence,
// approvals, releases, gate runs, the audit trail and API keys, in SQLite
// (embedded default) or PostgreSQL (scale).
//
// One schema serves both, migrated by embedded, versioned goose migrations.
// Everything that belongs to an environment is reached through an [Env]
// handle, whose queries all filter on that environment: forgetting the
// filter is impossible by construction. Correctness under concurrent
// writers (goroutines or service replicas) rests on unique constraints and
// transactions, never on in-process locks.
package metadata

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	// Database drivers: "pgx" (database/sql adapter of pgx) and "sqlite"
	// (modernc.org/sqlite, pure Go).
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// The driver names accepted by Open.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

//go:embed migrations
var migrations embed.FS

// Store is the metadata database. It is safe for concurrent use; several
// Stores (processes) may share one database.
type Store struct {
	driver string
	// db runs writes and transactions. For file-backed SQLite it holds a
	// single connection, so writers in this process queue in Go instead of
	// spinning on SQLITE_BUSY; BEGIN IMMEDIATE and busy_timeout order them
	// against other processes.
	db *sql.DB
	// rdb runs reads. For file-backed SQLite it is a separate, read-only
	// pool so that reads never wait for the writer (WAL); otherwise it is db.
	rdb *sql.DB
	now func() time.Time
}

// Open connects to the database and applies any pending migrations. driver
// is DriverSQLite or DriverPostgres. For SQLite, dsn is a file path
// (optionally with modernc.org/sqlite "?_pragma=..." parameters) or
// ":memory:"; for PostgreSQL it is a pgx connection string.
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	var (
		s   *Store
		err error
	)
	switch driver {
	case DriverSQLite:
		s, err = openSQLite(dsn)
	case DriverPostgres:
		s, err = openPostgres(dsn)
	default:
		return nil, registry.Errorf(registry.Invalid, registry.CodeInvalidRequest,
			"unknown metadata driver %q (want %q or %q)", driver, DriverSQLite, DriverPostgres)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openSQLite(dsn string) (*Store, error) {
	if dsn == "" {
		return nil, registry.Errorf(registry.Invalid, registry.CodeInvalidRequest, "sqlite metadata store needs a file path")
	}
	writer := withParams(dsn, "_busy_timeout=10000", "_foreign_keys=1", "_journal_mode=WAL",
		"_synchronous=NORMAL", "_txlock=immediate")
	db, err := sql.Open("sqlite", writer)
	if err != nil {
		return nil, dbError("open sqlite", err)
	}
	db.SetMaxOpenConns(1)
	s := &Store{driver: DriverSQLite, db: db, rdb: db, now: time.Now}
	if inMemory(dsn) {
		// Every connection to ":memory:" is a database of its own: keep one.
		return s, nil
	}
	reader := withParams(dsn, "_busy_timeout=10000", "_foreign_keys=1", "_query_only=1")
	if s.rdb, err = sql.Open("sqlite", reader); err != nil {
		db.Close()
		return nil, dbError("open sqlite", err)
	}
	return s, nil
}

// withParams appends DSN query parameters to a SQLite DSN.
func withParams(dsn string, params ...string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + strings.Join(params, "&")
}

func inMemory(dsn string) bool {
	return strings.HasPrefix(dsn, ":memory:") || strings.HasPrefix(dsn, "file::memory:") ||
		strings.Contains(dsn, "mode=memory")
}

func openPostgres(dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, registry.Errorf(registry.Invalid, registry.CodeInvalidRequest, "invalid postgres connection string").WithCause(err)
	}
	return &Store{driver: DriverPostgres, db: db, rdb: db, now: time.Now}, nil
}

// migrate applies the embedded migrations of s's dialect. On PostgreSQL an
// advisory lock serialises replicas that start together.
func (s *Store) migrate(ctx context.Context) error {
	dialect := goose.DialectSQLite3
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)),
	}
	if s.driver == DriverPostgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return dbError("migrate", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	fsys, err := fs.Sub(migrations, "migrations/"+s.driver)
	if err != nil {
		return dbError("migrate", err)
	}
	p, err := goose.NewProvider(dialect, s.db, fsys, opts...)
	if err != nil {
		return dbError("migrate", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return dbError("migrate", err)
	}
	return nil
}

// Close releases the database connections.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.rdb != s.db {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}

// Ping reports whether the database is reachable, for readiness probes.
// It fails with an Unavailable error when it is not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.PingContext(ctx); err != nil {
		return dbError("ping", err)
	}
	if err := s.db.PingContext(ctx); err != nil {
		return dbError("ping", err)
	}
	return nil
}

// Env returns the handle for one environment. Every query made through it
// reads and writes only that environment's rows.
func (s *Store) Env(env string) *Env { return &Env{s: s, env: env} }

// Env is an environment-scoped view of the Store. It is cheap to create
// and safe for concurrent use.
type Env struct {
	s   *Store
	env string
}

// Name is the environment this handle is bound to.
func (e *Env) Name() string { return e.env }

// KeyByHash finds an API key by the hex SHA-256 of its token. It is not
// environment-scoped because authentication is what establishes the
// environment. Revoked keys are returned with RevokedAt set: the caller
// decides. Returns a NotFound error (code "not_found") when no key matches.
func (s *Store) KeyByHash(ctx context.Context, tokenHash string) (auth.Key, error) {
	row := s.rdb.QueryRowContext(ctx, selectKey+` WHERE token_hash = $1`, tokenHash)
	k, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Key{}, registry.Errorf(registry.NotFound, registry.CodeNotFound, "no such API key")
	}
	if err != nil {
		return auth.Key{}, dbError("key by hash", err)
	}
	return k, nil
}

// AppendAudit records ev as given and returns its id. It exists for
// refusals that happen before an environment is known (ev.Environment may
// be ""); everything else should use Env.AppendAudit.
func (s *Store) AppendAudit(ctx context.Context, ev audit.Event) (int64, error) {
	id, err := s.insertAudit(ctx, s.db, ev)
	if err != nil {
		return 0, dbError("append audit", err)
	}
	return id, nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in a write transaction and commits when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return dbError("begin", err)
	}
	defer tx.Rollback() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return dbError("commit", err)
	}
	return nil
}

// internalf reports a caller bug: the store was handed something the
// service layer should have refused.
func internalf(format string, args ...any) *registry.Error {
	return &registry.Error{Kind: registry.Internal, Code: registry.CodeInternal,
		Message: "internal error", Err: fmt.Errorf("metadata: "+format, args...)}
}
