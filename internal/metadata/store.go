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
	"net/url"
	"os"
	"strings"
	"sync"
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
	// envs holds a handle per configured environment, built by Open and
	// never changed after it.
	envs map[string]*Env
	// chains queues the audit appends of each environment ("": unbound)
	// for group commit (groupcommit.go).
	chainMu sync.Mutex
	chains  map[string]*chainQueue
}

// Open connects to the database and applies any pending migrations. driver
// is DriverSQLite or DriverPostgres. For SQLite, dsn is a file path
// (optionally with modernc.org/sqlite "?_pragma=..." parameters) or
// ":memory:"; a database file is created, or tightened, to mode 0600,
// since it holds API key hashes and the audit trail. For PostgreSQL dsn is
// a pgx connection string.
//
// environments are the configured environment names, in order: at least
// one, each non-empty, no duplicates (an Invalid error otherwise). They are
// the only names Store.Env accepts.
func Open(ctx context.Context, driver, dsn string, environments []string) (*Store, error) {
	if err := checkEnvironments(environments); err != nil {
		return nil, err
	}
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
		return nil, registry.CodeInvalidRequest.Errorf("unknown metadata driver %q (want %q or %q)", driver, DriverSQLite, DriverPostgres)
	}
	if err != nil {
		return nil, err
	}
	s.envs = make(map[string]*Env, len(environments))
	for _, name := range environments {
		s.envs[name] = &Env{s: s, env: name}
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.sealLegacyAudit(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func checkEnvironments(names []string) error {
	if len(names) == 0 {
		return registry.CodeInvalidRequest.Errorf("the metadata store needs at least one environment")
	}
	seen := make(map[string]bool, len(names))
	for i, name := range names {
		if name == "" {
			return registry.CodeInvalidRequest.Errorf("environment %d has an empty name", i+1)
		}
		if seen[name] {
			return registry.CodeInvalidRequest.Errorf("environment %q is configured twice", name)
		}
		seen[name] = true
	}
	return nil
}

func openSQLite(dsn string) (*Store, error) {
	if dsn == "" {
		return nil, registry.CodeInvalidRequest.Errorf("sqlite metadata store needs a file path")
	}
	if path, ok := sqliteFile(dsn); ok {
		// Before sql.Open: SQLite would create the file 0644, and its -wal
		// and -shm files take the database file's mode.
		if err := restrictFile(path); err != nil {
			return nil, err
		}
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

// sqliteFile returns the path of the database file that dsn names, and
// false for in-memory databases and file: URIs naming another host.
func sqliteFile(dsn string) (string, bool) {
	if inMemory(dsn) {
		return "", false
	}
	// modernc.org/sqlite cuts its own parameters at the first '?'; in a
	// file: URI what follows is SQLite's, and not part of the path either.
	name, _, _ := strings.Cut(dsn, "?")
	if rest, ok := strings.CutPrefix(name, "file:"); ok {
		rest, _, _ = strings.Cut(rest, "#")
		if auth, ok := strings.CutPrefix(rest, "//"); ok {
			host, path, _ := strings.Cut(auth, "/")
			if host != "" && host != "localhost" {
				return "", false
			}
			rest = "/" + path
		}
		var err error
		if name, err = url.PathUnescape(rest); err != nil {
			return "", false
		}
	}
	return name, name != ""
}

// restrictFile creates the database file at path with mode 0600 if it does
// not exist, and removes group and other permissions from it, and from the
// -wal and -shm files beside it, if they do. Owner bits are left alone.
func restrictFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return dbError("create sqlite file", err)
		}
	case !errors.Is(err, fs.ErrExist): // another process may have just created it
		return dbError("create sqlite file", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) && p != path {
			continue
		}
		if err != nil {
			return dbError("stat sqlite file", err)
		}
		if mode := info.Mode().Perm(); mode&0o077 != 0 {
			if err := os.Chmod(p, mode&^0o077); err != nil {
				return dbError("restrict sqlite file", err)
			}
		}
	}
	return nil
}

func inMemory(dsn string) bool {
	return strings.HasPrefix(dsn, ":memory:") || strings.HasPrefix(dsn, "file::memory:") ||
		strings.Contains(dsn, "mode=memory")
}

func openPostgres(dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, registry.CodeInvalidRequest.Errorf("invalid postgres connection string").WithCause(err)
	}
	// database/sql keeps 2 idle connections by default: under a few dozen
	// concurrent requests every query beyond them dialled and forked a new
	// backend (32 small publishers: ~15 publishes/s, 44% system CPU, new
	// postgres processes every second). Keep as many idle as may be open.
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &Store{driver: DriverPostgres, db: db, rdb: db, now: time.Now}, nil
}

// postgresMaxConns bounds one replica's connections: PostgreSQL's default
// max_connections (100) leaves room for three replicas and an operator.
const postgresMaxConns = 30

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

// Env returns the handle of environment name. Every query made through it
// reads and writes only that environment's rows. A name that was not
// passed to Open is a NotFound error (code not_found).
func (s *Store) Env(name string) (*Env, error) {
	e, ok := s.envs[name]
	if !ok {
		return nil, registry.CodeNotFound.Errorf("unknown environment %q", name)
	}
	return e, nil
}

// Env is an environment-scoped view of the Store, safe for concurrent use.
// Handles are meant to be created once, at start-up, for the configured
// environments, and handed to whatever serves each environment: code that
// serves a request then holds a handle, never an environment name to look
// up, so an unknown name is a start-up failure rather than a request-time
// one.
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
		return auth.Key{}, registry.CodeNotFound.Errorf("no such API key")
	}
	if err != nil {
		return auth.Key{}, dbError("key by hash", err)
	}
	return k, nil
}

// AppendUnboundAudit records ev with no environment, whatever
// ev.Environment says, and returns its id. It is for unauthenticated
// requests only; everything else goes through an Env handle. No Env sees
// these events.
func (s *Store) AppendUnboundAudit(ctx context.Context, ev audit.Event) (int64, error) {
	ev.Environment = ""
	return s.appendAudit(ctx, ev)
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
	return &registry.Error{Kind: registry.Internal, Code: registry.CodeInternal.Name,
		Message: "internal error", Err: fmt.Errorf("metadata: "+format, args...)}
}
