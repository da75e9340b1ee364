// Package server wires configuration into a running stagegate: storage
// drivers per environment, the metadata store, the domain services and the
// HTTP API. cmd/stagegate and the end-to-end tests share it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
	blobminio "github.com/stagegate/stagegate/internal/blob/minio"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/httpapi"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/promotion"
	"github.com/stagegate/stagegate/registry"
)

// Server is a configured stagegate instance.
type Server struct {
	cfg      config.Config
	logger   *slog.Logger
	meta     *metadata.Store
	drivers  map[string]blob.Driver
	registry *registry.Service
	keys     map[string]*envKeys
	handler  http.Handler
}

// Option adjusts a Server.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock replaces the clock (tests of soak times and approval expiry).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New validates cfg, opens storage and metadata (creating buckets, directories
// and schema when missing), loads keys and gate policies, and builds the HTTP
// handler.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger, opts ...Option) (*Server, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	meta, err := OpenMetadata(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, meta: meta, drivers: map[string]blob.Driver{}, keys: map[string]*envKeys{}}
	envs := make([]registry.Environment, 0, len(cfg.Environments))
	promoEnvs := make([]*promotion.Environment, 0, len(cfg.Environments))
	for i, e := range cfg.Environments {
		keys, err := loadKeys(cfg, e, logger)
		if err != nil {
			meta.Close()
			return nil, err
		}
		var policy *gates.Policy
		if i > 0 {
			if policy, err = loadPolicy(e); err != nil {
				meta.Close()
				return nil, err
			}
		}
		d, err := openDriver(ctx, cfg, e)
		if err != nil {
			meta.Close()
			return nil, fmt.Errorf("environment %s: %w", e.Name, err)
		}
		s.drivers[e.Name] = d
		s.keys[e.Name] = keys
		store := blob.NewStore(d)
		env := registry.Environment{Name: e.Name, Blobs: store, Index: meta.Env(e.Name), Signer: keys.signer}
		promo := &promotion.Environment{Name: e.Name, Index: promotionIndex{meta.Env(e.Name)}, Blobs: store, Signer: keys.signer, Policy: policy}
		if keys.trustedCI != nil {
			env.TrustedCI = keys.trustedCI
			promo.TrustedCI = keys.trustedCI
		}
		envs = append(envs, env)
		promoEnvs = append(promoEnvs, promo)
	}
	s.registry, err = registry.NewService(envs, registry.Limits{MaxFileSize: int64(cfg.Limits.MaxFileSize), MaxFiles: cfg.Limits.MaxFiles}, o.now)
	if err != nil {
		meta.Close()
		return nil, err
	}
	promotions, err := promotion.New(promoEnvs, o.now)
	if err != nil {
		meta.Close()
		return nil, err
	}
	api := &httpapi.API{
		Registry:   s.registry,
		Promotions: promotions,
		Auth:       auth.NewAuthenticator(meta),
		Audit:      auditLog{meta},
		Keys:       func(env string) auth.KeyAdmin { return meta.Env(env) },
		Ready:      s.Ready,
		PublicKey: func(env string) ([]byte, string, bool) {
			k, ok := s.keys[env]
			if !ok {
				return nil, "", false
			}
			return k.signer.PublicKeyPEM(), k.signer.KeyID(), true
		},
		Logger: logger,
	}
	s.handler = api.Handler()
	return s, nil
}

// OpenMetadata opens the configured metadata store (used by `keys create`
// on the server host, which needs no blob storage).
func OpenMetadata(ctx context.Context, cfg config.Config) (*metadata.Store, error) {
	dsn := cfg.Database.DSN
	if cfg.Database.Driver == "sqlite" {
		dsn = cfg.SQLitePath()
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil && cfg.Database.DSN == "" {
			return nil, fmt.Errorf("creating data dir: %w", err)
		}
	}
	meta, err := metadata.Open(ctx, cfg.Database.Driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s metadata store: %w", cfg.Database.Driver, err)
	}
	return meta, nil
}

func openDriver(ctx context.Context, cfg config.Config, e config.Environment) (blob.Driver, error) {
	switch cfg.Storage.Driver {
	case "filesystem":
		return filesystem.New(cfg.BlobDir(e.Name))
	case "minio":
		m := cfg.Storage.MinIO
		mc := blobminio.Config{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey,
			Region: m.Region, Secure: m.Secure, Bucket: cfg.BucketFor(e), CreateBucket: true}
		if e.MinIO != nil {
			mc.AccessKey, mc.SecretKey = e.MinIO.AccessKey, e.MinIO.SecretKey
		}
		return blobminio.New(ctx, mc)
	}
	return nil, fmt.Errorf("unknown storage driver %q", cfg.Storage.Driver)
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// Metadata is the metadata store.
func (s *Server) Metadata() *metadata.Store { return s.meta }

// Ready reports whether the database and every bucket are reachable.
func (s *Server) Ready(ctx context.Context) error {
	errs := []error{s.meta.Ping(ctx)}
	for name, d := range s.drivers {
		if err := d.Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("storage %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Serve listens on cfg.Addr until ctx is cancelled, then shuts down
// gracefully. ready, when not nil, receives the bound address.
func (s *Server) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	return nil
}

// Close releases the metadata store.
func (s *Server) Close() error { return s.meta.Close() }

// auditLog adapts the metadata store to the HTTP layer's AuditLog.
type auditLog struct{ meta *metadata.Store }

func (l auditLog) Append(ctx context.Context, ev audit.Event) error {
	var err error
	if ev.Environment == "" {
		_, err = l.meta.AppendAudit(ctx, ev)
	} else {
		_, err = l.meta.Env(ev.Environment).AppendAudit(ctx, ev)
	}
	return err
}

func (l auditLog) Query(ctx context.Context, env string, f audit.Filter) ([]audit.Event, error) {
	return l.meta.Env(env).QueryAudit(ctx, f)
}
