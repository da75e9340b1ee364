package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/hygiene"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/server"
)

// hygieneFlags are the flags of the maintenance verbs (gc, scrub,
// reindex): they run on the server host against the configured stores,
// like keys.
type hygieneFlags struct {
	server serverFlags
	env    string
	// retained is set by withBucket: the environment's bucket has
	// retention (object lock).
	retained bool
}

func (c *cli) addHygieneFlags(cmd *cobra.Command, f *hygieneFlags) {
	f.server.addFlags(cmd, false)
	cmd.Flags().StringVar(&f.env, "env", "", "the environment whose bucket to work on")
	cmd.Flags().StringVarP(&c.output, "output", "o", "text", "output format: text or json")
	_ = cmd.MarkFlagRequired("env")
}

// withBucket opens the configured bucket and metadata handle of one
// environment.
func (c *cli) withBucket(ctx context.Context, f *hygieneFlags, fn func(context.Context, hygiene.Bucket, *metadata.Env) error) error {
	if c.output != "text" && c.output != "json" {
		return usageError{fmt.Errorf("--output must be text or json, not %q", c.output)}
	}
	cfg, err := f.server.load(c.getenv)
	if err != nil {
		return err
	}
	meta, err := server.OpenMetadata(ctx, cfg)
	if err != nil {
		return err
	}
	defer meta.Close()
	handle, err := meta.Env(f.env)
	if err != nil {
		return usageError{fmt.Errorf("unknown environment %q (configured: %s)", f.env, strings.Join(cfg.EnvironmentNames(), ", "))}
	}
	for _, e := range cfg.Environments {
		if e.Name == f.env {
			f.retained = e.Retention != nil
		}
	}
	d, err := server.OpenBucket(ctx, cfg, f.env)
	if err != nil {
		return err
	}
	b, err := hygiene.AsBucket(d)
	if err != nil {
		return err
	}
	return fn(ctx, b, handle)
}

func (c *cli) gcCommand() *cobra.Command {
	var (
		f          hygieneFlags
		dryRun     bool
		breakLease bool
		grace      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "gc --env ENV [--dry-run] [--grace 24h] [--break-lease]",
		Short: "Remove blobs nothing refers to, and abandoned uploads, from an environment's bucket (server host)",
		Long: "gc removes from ENV's bucket the blobs, signatures and attestations that no version, evidence or ref refers to " +
			"and that are older than --grace, the filesystem driver's temp files and MinIO's incomplete multipart uploads " +
			"started before it. It prints each object removed and the bytes freed; --dry-run prints the same and removes nothing.\n\n" +
			"Publishes running meanwhile are protected by a handshake of publish intents and gc tombstones (see the README); " +
			"the grace period protects evidence uploads and promotions in flight: it must be at least 1h, or exactly 0, which is " +
			"only safe while none can run. Incomplete uploads are aborted only when older than the grace and at least 1h. " +
			"Objects under MinIO retention (object lock) are skipped and reported as locked.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := hygiene.CheckGrace(grace); err != nil {
				return usageError{err}
			}
			return c.withBucket(cmd.Context(), &f, func(ctx context.Context, b hygiene.Bucket, meta *metadata.Env) error {
				if breakLease {
					// A gc that crashed left its lease (and tombstones,
					// which keep publishes of those blobs waiting).
					if err := meta.DeleteTombstones(ctx); err != nil {
						return err
					}
					if err := meta.ReleaseGCLease(ctx); err != nil {
						return err
					}
				}
				return c.runGC(ctx, f.env, &hygiene.GC{Bucket: b, Index: meta, Grace: grace, DryRun: dryRun, Retained: f.retained})
			})
		},
	}
	c.addHygieneFlags(cmd, &f)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed, remove nothing")
	cmd.Flags().BoolVar(&breakLease, "break-lease", false, "first drop the lease and tombstones a crashed gc left (only when no other gc runs on ENV)")
	cmd.Flags().DurationVar(&grace, "grace", hygiene.DefaultGrace, "leave objects younger than this (at least 1h, or 0 when no promotion or evidence upload can run)")
	return cmd
}

func (c *cli) runGC(ctx context.Context, env string, g *hygiene.GC) error {
	verb := "removed"
	if g.DryRun {
		verb = "would remove"
	}
	type removal struct {
		Key        string  `json:"key"`
		Family     string  `json:"family"`
		Size       int64   `json:"size"`
		AgeSeconds float64 `json:"ageSeconds"`
		Error      string  `json:"error,omitempty"`
		Locked     bool    `json:"locked,omitempty"`
	}
	var removals []removal
	g.Report = func(r hygiene.Removal) {
		out := removal{Key: r.Key, Family: r.Family, Size: r.Size, AgeSeconds: r.Age.Seconds()}
		if r.Err != nil {
			out.Error, out.Locked = r.Err.Error(), errors.Is(r.Err, blob.ErrLocked)
		}
		removals = append(removals, out)
		if c.json() {
			return
		}
		switch {
		case out.Locked:
			fmt.Fprintf(c.stdout, "locked    %-11s %s %d bytes (retention; kept)\n", r.Family, r.Key, r.Size)
		case r.Err != nil:
			fmt.Fprintf(c.stdout, "failed    %-11s %s: %v\n", r.Family, r.Key, r.Err)
		default:
			fmt.Fprintf(c.stdout, "%s %-11s %s %d bytes, %s old\n", verb, r.Family, r.Key, r.Size, r.Age.Round(time.Second))
		}
	}
	res, err := g.Run(ctx)
	if err != nil {
		return err
	}
	if c.json() {
		if removals == nil {
			removals = []removal{}
		}
		if err := c.printJSON(map[string]any{"environment": env, "dryRun": g.DryRun, "graceSeconds": g.Grace.Seconds(),
			"removed": removals, "result": res}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "gc %s: %s %d objects, %d bytes; %d locked; %d referenced blobs, %d younger than %s and %d of unknown form kept (%d objects listed)\n",
			env, verb, res.Removed, res.Bytes, res.Locked, res.Referenced, res.Young, g.Grace, res.Unknown, res.Scanned)
	}
	if res.Failed > 0 {
		return fmt.Errorf("gc %s: %d objects could not be removed", env, res.Failed)
	}
	return nil
}
