package server_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/internal/signing/signingtest"
)

// stack is a running stagegate over one storage/database combination.
type stack struct {
	t   testing.TB
	url string
	srv *server.Server
	cfg config.Config
}

// stackKinds lists the combinations every end-to-end test runs on: the
// embedded default always, MinIO + PostgreSQL when the test script provides
// them (scripts/test.sh always does).
func stackKinds(t *testing.T) []string {
	kinds := []string{"embedded"}
	if os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT") != "" && os.Getenv("STAGEGATE_TEST_POSTGRES_DSN") != "" {
		kinds = append(kinds, "minio+postgres")
	} else {
		t.Log("STAGEGATE_TEST_MINIO_ENDPOINT / STAGEGATE_TEST_POSTGRES_DSN unset: running on the embedded default only (scripts/test.sh runs both)")
	}
	return kinds
}

func forEachStack(t *testing.T, fn func(t *testing.T, s *stack)) {
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			fn(t, newStack(t, kind, nil))
		})
	}
}

func randomSuffix(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func newStack(t testing.TB, kind string, tweak func(*config.Config), opts ...server.Option) *stack {
	t.Helper()
	opts = append([]server.Option{server.WithSigners(signingtest.Signers(t))}, opts...)
	return startStack(t, stackConfig(t, kind, tweak), slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
}

// stackConfig is the configuration of one stack kind, with tweak applied.
func stackConfig(t testing.TB, kind string, tweak func(*config.Config)) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if kind == "minio+postgres" {
		cfg.Storage.Driver = "minio"
		cfg.Storage.MinIO = config.MinIO{
			Endpoint:     os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT"),
			AccessKey:    os.Getenv("STAGEGATE_TEST_MINIO_ACCESS_KEY"),
			SecretKey:    os.Getenv("STAGEGATE_TEST_MINIO_SECRET_KEY"),
			BucketPrefix: "sg-" + randomSuffix(t) + "-",
		}
		cfg.Database = config.Database{Driver: "postgres", DSN: freshPostgres(t)}
	}
	if tweak != nil {
		tweak(&cfg)
	}
	return cfg
}

// startStack builds a server from cfg and serves its handler on a test
// HTTP server until the test ends.
func startStack(t testing.TB, cfg config.Config, logger *slog.Logger, opts ...server.Option) *stack {
	t.Helper()
	srv, err := server.New(context.Background(), cfg, logger, opts...)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &stack{t: t, url: hs.URL, srv: srv, cfg: cfg}
}

// serveInBackground runs srv.Serve on cfg.Addr until the test ends and
// returns the bound address as a URL.
func serveInBackground(t testing.TB, srv *server.Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc, errc := make(chan string, 1), make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, func(addr string) { addrc <- addr }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("Serve did not return after cancel")
		}
		srv.Close()
	})
	select {
	case addr := <-addrc:
		return "http://" + addr
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	}
	return ""
}

// freshPostgres creates a database for one test and drops it afterwards.
func freshPostgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv("STAGEGATE_TEST_POSTGRES_DSN")
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := "sg_e2e_" + randomSuffix(t)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// key mints an API key directly in the store, as `stagegate keys create` does.
func (s *stack) key(env string, role auth.Role) string {
	s.t.Helper()
	handle, err := s.srv.Metadata().Env(env)
	if err != nil {
		s.t.Fatal(err)
	}
	name := strings.ReplaceAll(env+"-"+string(role), "/", "-")
	token, _, err := auth.CreateKey(context.Background(), handle, env, auth.KeySpec{Name: name, Role: role,
		Owner: name + "@example.test", CreatedByOwner: auth.HostIdentity}, audit.Actor{Name: "test"}, time.Now())
	if err != nil {
		s.t.Fatalf("create key: %v", err)
	}
	return token
}

func (s *stack) client(token string) *client.Client { return client.New(s.url, token, nil) }

// permissiveStagingStack is a stack whose staging promotes any kind
// without evidence (promotion order and digest integrity only): for tests
// of what a promotion copies, not of its gates.
func permissiveStagingStack(t *testing.T, kind string) *stack {
	t.Helper()
	policy := filepath.Join(t.TempDir(), "staging.yaml")
	if err := os.WriteFile(policy, []byte(permissiveStaging), 0o600); err != nil {
		t.Fatal(err)
	}
	return newStack(t, kind, func(c *config.Config) { c.Environments[1].Policy = policy })
}
