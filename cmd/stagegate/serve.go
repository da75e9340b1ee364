package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/server"
)

// serverFlags locate the server's configuration: used by serve and by the
// server-host verbs (keys).
type serverFlags struct {
	configPath string
	addr       string
	dataDir    string
}

func (f *serverFlags) addFlags(cmd *cobra.Command, withAddr bool) {
	cmd.Flags().StringVar(&f.configPath, "config", "", "YAML config file (default: the embedded default)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "data directory of the embedded default (default ./stagegate-data)")
	if withAddr {
		cmd.Flags().StringVar(&f.addr, "addr", "", "listen address (default 127.0.0.1:8080)")
	}
}

// load applies, in rising precedence: defaults, the file, STAGEGATE_*
// variables, flags.
func (f *serverFlags) load(getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(f.configPath, getenv)
	if err != nil {
		return config.Config{}, err
	}
	if f.addr != "" {
		cfg.Addr = f.addr
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	return cfg, cfg.Validate()
}

func (c *cli) serveCommand() *cobra.Command {
	var f serverFlags
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the stagegate service (embedded default: filesystem + SQLite under ./stagegate-data)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(c.getenv)
			if err != nil {
				return err
			}
			if metricsAddr != "" {
				cfg.Server.MetricsAddr = metricsAddr
			}
			logger := slog.New(slog.NewJSONHandler(c.stderr, nil))
			srv, err := server.New(cmd.Context(), cfg, logger)
			if err != nil {
				return err
			}
			defer srv.Close()
			return srv.Serve(cmd.Context(), func(addr string) {
				logger.Info("stagegate listening", "addr", addr, "storage", cfg.Storage.Driver,
					"database", cfg.Database.Driver, "environments", len(cfg.Environments))
			})
		},
	}
	f.addFlags(cmd, true)
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics on this address instead of the main listener (default: on the main listener)")
	return cmd
}

func (c *cli) keysCommand() *cobra.Command {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Manage API keys on the server host, directly against the configured store",
		Long: "keys works on the server host against the configured metadata store, so the first admin key " +
			"can be bootstrapped. Admins elsewhere manage keys over the API (POST/GET/DELETE /v1/environments/{env}/keys).",
	}
	var f serverFlags
	var env, role, name, owner, createdBy string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a key; prints the token alone on stdout (shown once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd.Context(), &f, env, func(ctx context.Context, admin auth.KeyAdmin) error {
				r, err := auth.ParseRole(role)
				if err != nil {
					return usageError{err}
				}
				if r.RequiresOwner() && owner == "" {
					return usageError{fmt.Errorf("--owner is required for %s keys: approvals are counted per owner, never per key", r)}
				}
				spec := auth.KeySpec{Name: name, Role: r, Owner: owner, CreatedByOwner: createdBy}
				token, k, err := auth.CreateKey(ctx, admin, env, spec, audit.Actor{Name: "cli:keys-create"}, time.Now())
				if err != nil {
					return err
				}
				if c.json() {
					return c.printJSON(map[string]any{"key": k, "token": token})
				}
				fmt.Fprintln(c.stdout, token)
				return nil
			})
		},
	}
	create.Flags().StringVar(&role, "role", "", "reader, publisher, promoter, approver or admin")
	create.Flags().StringVar(&name, "name", "", "a name for the key (shown in audit events)")
	create.Flags().StringVar(&owner, "owner", "", "the person accountable for the key, e.g. an email; required for approver, promoter and admin keys (approvals are counted per owner)")
	// Whoever runs this has the database anyway; the default names the
	// channel, and an operator who will also approve or promote should give
	// their identity so the approvals check can discount keys they minted.
	create.Flags().StringVar(&createdBy, "created-by", auth.HostIdentity, "the identity minting the key, recorded as its createdByOwner")
	_ = create.MarkFlagRequired("role")
	_ = create.MarkFlagRequired("name")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys of an environment",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd.Context(), &f, env, func(ctx context.Context, admin auth.KeyAdmin) error {
				keys, err := admin.ListKeys(ctx)
				if err != nil {
					return err
				}
				if c.json() {
					return c.printJSON(map[string]any{"keys": keys})
				}
				tw := newTable(c.stdout, "ID", "NAME", "ROLE", "OWNER", "CREATED", "CREATED BY", "REVOKED")
				for _, k := range keys {
					revoked := "-"
					if k.RevokedAt != nil {
						revoked = k.RevokedAt.Format(time.RFC3339)
					}
					tw.row(k.ID, k.Name, string(k.Role), orDash(k.Owner), k.CreatedAt.Format(time.RFC3339),
						orDash(k.CreatedByOwner), revoked)
				}
				return tw.flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "Revoke a key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd.Context(), &f, env, func(ctx context.Context, admin auth.KeyAdmin) error {
				if err := auth.RevokeKey(ctx, admin, env, args[0], audit.Actor{Name: "cli:keys-revoke"}, time.Now()); err != nil {
					return err
				}
				fmt.Fprintf(c.stderr, "revoked %s\n", args[0])
				return nil
			})
		},
	}
	for _, cmd := range []*cobra.Command{create, list, revoke} {
		f.addFlags(cmd, false)
		cmd.Flags().StringVar(&env, "env", "", "environment the key is bound to")
		cmd.Flags().StringVarP(&c.output, "output", "o", "text", "output format: text or json")
		_ = cmd.MarkFlagRequired("env")
		keys.AddCommand(cmd)
	}
	return keys
}

// withStore opens the configured metadata store for one environment.
func (c *cli) withStore(ctx context.Context, f *serverFlags, env string, fn func(context.Context, auth.KeyAdmin) error) error {
	cfg, err := f.load(c.getenv)
	if err != nil {
		return err
	}
	meta, err := server.OpenMetadata(ctx, cfg)
	if err != nil {
		return err
	}
	defer meta.Close()
	handle, err := meta.Env(env)
	if err != nil {
		return usageError{fmt.Errorf("unknown environment %q (configured: %s)", env, strings.Join(cfg.EnvironmentNames(), ", "))}
	}
	return fn(ctx, handle)
}

// orDash shows an empty cell as "-", so columns stay aligned and a legacy
// key's missing owner reads as missing.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
