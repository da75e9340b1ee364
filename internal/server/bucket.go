package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/registry"
)

// OpenBucket opens the storage driver of the environment named env, as
// serve would (creating the bucket or directory when missing), for the
// maintenance verbs on the server host (gc, scrub, reindex).
func OpenBucket(ctx context.Context, cfg config.Config, env string) (blob.Driver, error) {
	for _, e := range cfg.Environments {
		if e.Name == env {
			d, err := openDriver(ctx, cfg, e)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", env, err)
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("unknown environment %q (configured: %s)", env, strings.Join(cfg.EnvironmentNames(), ", "))
}

// LoadVerifier loads the keys of the environment named env, as serve would
// (the signing key and the keys it rotated from), and returns what checks
// its signatures: reindex verifies the signatures it restores with it.
func LoadVerifier(cfg config.Config, env string, logger *slog.Logger) (registry.Verifier, error) {
	for _, e := range cfg.Environments {
		if e.Name == env {
			keys, err := loadKeys(cfg, e, logger, nil)
			if err != nil {
				return nil, err
			}
			return keys.verifier, nil
		}
	}
	return nil, fmt.Errorf("unknown environment %q (configured: %s)", env, strings.Join(cfg.EnvironmentNames(), ", "))
}
