package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/registry"
)

// newAuthenticator accepts API keys from the metadata store and, when
// auth.oidc lists issuers, OIDC ID tokens mapped by its rules.
func newAuthenticator(cfg config.Config, meta *metadata.Store, envs *environment.List, now func() time.Time, logger *slog.Logger) (*auth.Authenticator, error) {
	if len(cfg.Auth.OIDC.Issuers) == 0 {
		return auth.NewAuthenticator(meta), nil
	}
	issuers := make([]auth.OIDCIssuer, len(cfg.Auth.OIDC.Issuers))
	for i, is := range cfg.Auth.OIDC.Issuers {
		leeway := is.Leeway
		if leeway == 0 {
			leeway = config.DefaultOIDCLeeway
		}
		issuers[i] = auth.OIDCIssuer{Issuer: is.Issuer, Audience: is.Audience, JWKSURL: is.JWKSURL, Leeway: leeway}
		for _, r := range is.Rules {
			issuers[i].Rules = append(issuers[i].Rules, auth.OIDCRule{Name: r.Name, Claims: r.Claims,
				Environment: r.Environment, Role: auth.Role(r.Role), Identity: r.Identity})
		}
	}
	o, err := auth.NewOIDC(issuers, auth.OIDCOptions{Now: now, Logger: logger,
		Record: func(ctx context.Context, env string, ev audit.Event) error {
			e, ok := envs.Bind(env)
			if !ok {
				return registry.CodeInternal.Errorf("OIDC rule names environment %q, which is not configured", env)
			}
			_, err := e.Metadata().AppendAudit(ctx, ev)
			return err
		}})
	if err != nil {
		return nil, err
	}
	for _, is := range issuers {
		logger.Info("OIDC trusted publishing", "issuer", is.Issuer, "audience", is.Audience, "rules", len(is.Rules))
	}
	return auth.NewAuthenticator(meta, auth.WithOIDC(o)), nil
}
