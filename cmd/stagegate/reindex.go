package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/internal/hygiene"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/server"
)

func (c *cli) reindexCommand() *cobra.Command {
	var (
		f        hygieneFlags
		noVerify bool
	)
	cmd := &cobra.Command{
		Use:   "reindex --env ENV",
		Short: "Rebuild an environment's versions index and signatures from its bucket alone (server host)",
		Long: "reindex reads ENV's bucket (refs, manifests, configs, signatures) and commits every version the index lacks, " +
			"for disaster recovery after the metadata database was lost. Versions already indexed with the same digest are " +
			"kept; a different digest is reported as a conflict (exit 1). Not in the bucket, so not recovered: who published, " +
			"the version as originally spelled, CI signatures, evidence links, approvals, releases, gate runs and audit events. " +
			"Each restored version gets an audit event " + hygiene.ActionReindex + ". The environment's signatures are " +
			"verified with its keys (loaded as serve loads them: same password variables); a version none of whose " +
			"signatures verifies is not restored. --no-verify restores signatures unchecked, recorded as untrusted, for " +
			"when the keys are lost too.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withBucket(cmd.Context(), &f, func(ctx context.Context, b hygiene.Bucket, meta *metadata.Env) error {
				r := &hygiene.Reindex{Bucket: b, Index: meta, Environment: f.env}
				if !noVerify {
					cfg, err := f.server.load(c.getenv)
					if err != nil {
						return err
					}
					if r.Verifier, err = server.LoadVerifier(cfg, f.env, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
						return fmt.Errorf("loading the keys of %s (or pass --no-verify): %w", f.env, err)
					}
				}
				return c.runReindex(ctx, f.env, r)
			})
		},
	}
	c.addHygieneFlags(cmd, &f)
	cmd.Flags().BoolVar(&noVerify, "no-verify", false, "restore signatures without checking them (recorded as untrusted)")
	return cmd
}

func (c *cli) runReindex(ctx context.Context, env string, r *hygiene.Reindex) error {
	type outcome struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Digest  string `json:"manifestDigest,omitempty"`
		Outcome string `json:"outcome"`
		Detail  string `json:"detail,omitempty"`
	}
	outcomes := []outcome{}
	r.Report = func(x hygiene.Reindexed) {
		o := outcome{Name: x.Name, Version: x.Version, Outcome: x.Outcome, Detail: x.Detail}
		if x.Digest.Hex != "" {
			o.Digest = x.Digest.String()
		}
		outcomes = append(outcomes, o)
		if !c.json() {
			fmt.Fprintf(c.stdout, "%-16s %s@%s %s %s\n", x.Outcome, x.Name, x.Version, o.Digest, x.Detail)
		}
	}
	res, err := r.Run(ctx)
	if err != nil {
		return err
	}
	if c.json() {
		if err := c.printJSON(map[string]any{"environment": env, "ok": res.OK(), "versions": outcomes, "result": res}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "reindex %s: %d added, %d already present, %d conflicts, %d unreadable\n",
			env, res.Added, res.Present, res.Conflicts, res.Unreadable)
	}
	if !res.OK() {
		return fmt.Errorf("reindex %s: %d conflicts, %d unreadable refs", env, res.Conflicts, res.Unreadable)
	}
	return nil
}
