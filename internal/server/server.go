// Package server wires configuration into a running stagegate: storage
// drivers per environment, the metadata store, the domain services and the
// HTTP API. cmd/stagegate and the end-to-end tests share it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
	blobminio "github.com/stagegate/stagegate/internal/blob/minio"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/dashboard"
	"github.com/stagegate/stagegate/internal/httpapi"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/metrics"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/promotion"
	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/rollback"
)

// Server is a configured stagegate instance.
type Server struct {
	cfg     config.Config
	logger  *slog.Logger
	meta    *metadata.Store
	envs    *environment.List
	drivers []blob.Driver // in promotion order, for readiness
	handler http.Handler
	metrics *metrics.Metrics
}

// Option adjusts a Server.
type Option func(*options)

type options struct {
	now     func() time.Time
	signers map[string]*signing.Signer
}

// WithClock replaces the clock (tests of soak times and approval expiry).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSigners supplies already loaded signing keys by environment name
// instead of the configured key files. Loading a cosign key runs scrypt,
// which dominates the start-up of short-lived servers in tests; the keys
// are the same kind of value either way.
func WithSigners(signers map[string]*signing.Signer) Option {
	return func(o *options) { o.signers = signers }
}

// New validates cfg, opens storage and metadata (creating buckets, directories
// and schema when missing), loads keys and gate policies, builds every
// environment once, and builds the HTTP handler over them.
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
	warnOpenDataDir(cfg, logger)
	s := &Server{cfg: cfg, logger: logger, meta: meta, metrics: metrics.New()}
	envs, keyAdmins, err := s.buildEnvironments(ctx, cfg, logger, o.signers)
	if err != nil {
		meta.Close()
		return nil, err
	}
	s.envs = envs
	authn, err := newAuthenticator(cfg, meta, envs, o.now, logger)
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("auth.oidc: %w", err)
	}
	api := &httpapi.API{
		Environments: envs,
		Registry:     registry.NewService(registry.Limits{MaxFileSize: int64(cfg.Limits.MaxFileSize), MaxFiles: cfg.Limits.MaxFiles}, o.now),
		Promotions:   promotion.New(o.now),
		Rollbacks:    rollback.New(o.now),
		Auth:         authn,
		Unbound:      meta,
		Keys:         func(e *environment.Environment) auth.KeyAdmin { return keyAdmins[e.Position()] },
		Ready:        s.Ready,
		Logger:       logger,
		Observer:     s.metrics,
		KeyLimits: httpapi.KeyLimits{
			Requests: func(r auth.Role) httpapi.Rate {
				rate := cfg.Limits.Requests.For(string(r))
				return httpapi.Rate{PerSecond: rate.PerSecond, Burst: rate.Burst}
			},
			MaxUploads: cfg.Limits.UploadsPerKey,
		},
	}
	api.AlertmanagerSecret = func(e *environment.Environment) string {
		return cfg.Environments[e.Position()].Hooks.AlertmanagerToken()
	}
	if cfg.Server.MetricsAddr == "" {
		api.MetricsHandler = s.metrics.Handler()
	}
	// The dashboard calls the API in process with each person's own keys; it
	// reaches s.handler when a request comes, after it is built below.
	api.UI = dashboard.New(dashboard.Options{API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handler.ServeHTTP(w, r)
	}), KeyFields: len(cfg.Environments), Logger: logger, Now: o.now})
	s.handler = api.Handler()
	return s, nil
}

// buildEnvironments wires each configured environment once: its bucket,
// metadata handle, keys and policy. This is the one place environment names
// are resolved into storage, metadata and keys.
func (s *Server) buildEnvironments(ctx context.Context, cfg config.Config, logger *slog.Logger, signers map[string]*signing.Signer) (*environment.List, []auth.KeyAdmin, error) {
	specs := make([]environment.Spec, 0, len(cfg.Environments))
	keyAdmins := make([]auth.KeyAdmin, 0, len(cfg.Environments))
	for i, e := range cfg.Environments {
		keys, err := loadKeys(cfg, e, logger, signers[e.Name])
		if err != nil {
			return nil, nil, err
		}
		if signers[e.Name] == nil {
			// Decrypting a cosign key runs scrypt (N=32768, r=8: 32 MiB of
			// scratch, more with its copies), garbage at once but left in
			// the heap, which the runtime keeps: three environments sat at
			// ~185 MiB resident, idle. Keys are decrypted once, at start:
			// collect and return that memory now, after each key, so that
			// the peak is one key's scrypt and the idle process small.
			debug.FreeOSMemory()
		}
		var policy *gates.Policy
		if i > 0 {
			if policy, err = loadPolicy(e); err != nil {
				return nil, nil, err
			}
		}
		d, err := openDriver(ctx, cfg, e)
		if err != nil {
			return nil, nil, fmt.Errorf("environment %s: %w", e.Name, err)
		}
		handle, err := s.meta.Env(e.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("environment %s: %w", e.Name, err)
		}
		d = blob.Observed(d, s.metrics.BlobObserver(e.Name, cfg.Storage.Driver))
		s.drivers = append(s.drivers, d)
		keyAdmins = append(keyAdmins, handle)
		spec := environment.Spec{Name: e.Name, Blobs: blob.NewStore(d), Metadata: handle,
			Signer: keys.signer, Verifier: keys.verifier, Policy: policy}
		if keys.trustedCI != nil {
			// A nil *Keyring in the interface would not be a nil interface.
			spec.TrustedCI = keys.trustedCI
		}
		specs = append(specs, spec)
	}
	envs, err := environment.New(specs)
	if err != nil {
		return nil, nil, err
	}
	return envs, keyAdmins, nil
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
	meta, err := metadata.Open(ctx, cfg.Database.Driver, dsn, cfg.EnvironmentNames())
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
		if r := e.Retention; r != nil {
			mc.Retention = &blobminio.Retention{Mode: r.Mode, Days: uint(r.Days)}
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
	for i, e := range s.envs.All() {
		if err := s.drivers[i].Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("storage %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Close releases the metadata store.
func (s *Server) Close() error { return s.meta.Close() }
