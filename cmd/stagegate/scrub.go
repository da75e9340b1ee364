package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/internal/hygiene"
	"github.com/stagegate/stagegate/internal/metadata"
)

func (c *cli) scrubCommand() *cobra.Command {
	var (
		f      hygieneFlags
		repair []string
	)
	cmd := &cobra.Command{
		Use:   "scrub --env ENV [--repair-from FILE…]",
		Short: "Re-hash every blob of an environment's bucket and report corrupt and missing ones (server host)",
		Long: "scrub reads every blob of ENV's bucket, streamed, and checks that its bytes hash to its key; it also reports blobs " +
			"that versions, evidence or refs name but the bucket lacks. It exits 1 when anything is wrong. A corrupt blob is " +
			"marked, so that the next upload (or publish) of the right bytes replaces it. --repair-from FILE, repeatable, " +
			"stores a local file whose sha256 is that of a corrupt or missing blob in its place; the bytes are verified again " +
			"as they are written and the old blob is replaced atomically.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withBucket(cmd.Context(), &f, func(ctx context.Context, b hygiene.Bucket, meta *metadata.Env) error {
				return c.runScrub(ctx, f.env, &hygiene.Scrub{Bucket: b, Index: meta, RepairFrom: repair})
			})
		},
	}
	c.addHygieneFlags(cmd, &f)
	cmd.Flags().StringArrayVar(&repair, "repair-from", nil, "a file with known-good bytes of a blob (repeatable)")
	return cmd
}

func (c *cli) runScrub(ctx context.Context, env string, s *hygiene.Scrub) error {
	type finding struct {
		Digest  string `json:"digest,omitempty"`
		Problem string `json:"problem"`
		Size    int64  `json:"size"`
		Detail  string `json:"detail"`
	}
	findings := []finding{}
	s.Report = func(f hygiene.Finding) {
		findings = append(findings, finding{Digest: f.Digest.String(), Problem: string(f.Problem), Size: f.Size, Detail: f.Detail})
		if !c.json() {
			fmt.Fprintf(c.stdout, "%-8s  %s  %s\n", f.Problem, f.Digest, f.Detail)
		}
	}
	res, err := s.Run(ctx)
	if err != nil {
		return err
	}
	if c.json() {
		if err := c.printJSON(map[string]any{"environment": env, "ok": res.OK(), "findings": findings, "result": res}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "scrub %s: %d blobs (%d bytes) checked; %d corrupt, %d missing, %d repaired\n",
			env, res.Checked, res.Bytes, res.Corrupt, res.Missing, res.Repaired)
	}
	if !res.OK() {
		return fmt.Errorf("scrub %s: %d corrupt and %d missing blobs", env, res.Corrupt, res.Missing)
	}
	return nil
}
