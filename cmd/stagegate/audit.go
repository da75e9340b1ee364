package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/signing"
)

// auditFilterFlags are the filters the query and the export share.
type auditFilterFlags struct {
	action, target, name, version, actor, outcome, requestID, since, until string
}

func (f *auditFilterFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.action, "action", "", "filter by action (e.g. artifact.publish)")
	cmd.Flags().StringVar(&f.target, "target", "", "filter by target (a trailing * matches a prefix)")
	cmd.Flags().StringVar(&f.name, "name", "", "filter by artifact name (exact)")
	cmd.Flags().StringVar(&f.version, "version", "", "filter by artifact version (exact, canonical semver)")
	cmd.Flags().StringVar(&f.actor, "actor", "", "filter by actor")
	cmd.Flags().StringVar(&f.outcome, "outcome", "", "success, denied or failed")
	cmd.Flags().StringVar(&f.requestID, "request-id", "", "filter by request id")
	cmd.Flags().StringVar(&f.since, "since", "", "RFC 3339 time, inclusive")
	cmd.Flags().StringVar(&f.until, "until", "", "RFC 3339 time, exclusive")
}

func (f *auditFilterFlags) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"action": f.action, "target": f.target, "name": f.name, "version": f.version,
		"actor": f.actor, "outcome": f.outcome, "requestId": f.requestID, "since": f.since, "until": f.until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func (c *cli) auditCommand() *cobra.Command {
	var (
		env     string
		filters auditFilterFlags
		before  string
		limit   int
	)
	cmd := &cobra.Command{
		Use:   "audit --env ENV",
		Short: "Query an environment's audit trail, newest first; export it, verify its hash chain",
		Long: "audit lists events newest first, one page at a time: when there are more, it prints the cursor of the " +
			"next page, passed back with --before. Paging neither skips nor repeats events appended meanwhile.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			q := filters.query()
			if before != "" {
				q.Set("before", before)
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			page, err := cl.AuditPage(cmd.Context(), env, q)
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(page)
			}
			t := newTable(c.stdout, "ID", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "CODE")
			for _, e := range page.Events {
				t.row(strconv.FormatInt(e.ID, 10), e.Time.Format(time.RFC3339), e.Actor, e.Action, e.Target, string(e.Outcome), e.ErrorCode)
			}
			if err := t.flush(); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(c.stderr, "more: --before %s\n", page.Next)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	filters.register(cmd)
	cmd.Flags().StringVar(&before, "before", "", "cursor: events older than this (the 'more' line of the previous page)")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many events (default 100, max 1000)")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	cmd.AddCommand(c.auditExportCommand(), c.auditCheckpointCommand(), c.auditVerifyCommand())
	return cmd
}

func (c *cli) auditExportCommand() *cobra.Command {
	var (
		env     string
		filters auditFilterFlags
	)
	cmd := &cobra.Command{
		Use:   "export --env ENV [--since TIME] [--until TIME] > audit.jsonl",
		Short: "Stream an environment's audit trail as JSON Lines, oldest first",
		Long: "export writes one JSON event per line to stdout, oldest first, in constant memory whatever the size of " +
			"the trail. The export ends at the newest event when it starts. If the stream breaks off, export fails " +
			"(exit 1) rather than leave a shorter file that looks complete.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			body, err := cl.OpenAuditExport(cmd.Context(), env, filters.query())
			if err != nil {
				return err
			}
			defer body.Close()
			if _, err := io.Copy(c.stdout, body); err != nil {
				return fmt.Errorf("audit export broke off: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	filters.register(cmd)
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, false)
	return cmd
}

func (c *cli) auditCheckpointCommand() *cobra.Command {
	var env, dir string
	cmd := &cobra.Command{
		Use:   "checkpoint --env ENV [--dir DIR]",
		Short: "Fetch the signed head of an environment's audit chain; write checkpoint.json and checkpoint.json.sig",
		Long: "checkpoint asks the server to sign the head of the environment's audit chain with the environment's key " +
			"and writes the exact signed bytes to DIR/checkpoint.json and the signature to DIR/checkpoint.json.sig " +
			"(existing files are not overwritten), for `cosign verify-blob --key ENV.pub --signature checkpoint.json.sig " +
			"--insecure-ignore-tlog=true checkpoint.json`. Keep them: `audit verify --checkpoint` later proves that " +
			"history up to this head was not rewritten.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			cp, err := cl.AuditCheckpoint(cmd.Context(), env)
			if err != nil {
				return err
			}
			payloadFile := filepath.Join(dir, "checkpoint.json")
			if err := writeNew(payloadFile, cp.Payload); err != nil {
				return err
			}
			if err := writeNew(payloadFile+".sig", []byte(cp.Signature)); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(map[string]any{"checkpoint": cp.Checkpoint, "keyId": cp.KeyID,
					"files": []string{payloadFile, payloadFile + ".sig"}})
			}
			fmt.Fprintf(c.stdout, "checkpoint of %s: %d events, head %s, at %s, signed by %s\nwrote %s and %s.sig\n",
				cp.Checkpoint.Environment, cp.Checkpoint.Count, orNone(cp.Checkpoint.HeadHash),
				cp.Checkpoint.Time.Format(time.RFC3339), cp.KeyID, payloadFile, payloadFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to write checkpoint.json and checkpoint.json.sig into")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	return cmd
}

// writeNew writes a file that must not exist yet: a checkpoint is
// evidence, and silently replacing a kept one would lose it.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (c *cli) auditVerifyCommand() *cobra.Command {
	var (
		env, keyFile string
		kept         []string
	)
	cmd := &cobra.Command{
		Use:   "verify --env ENV [--key ENV.pub] [--checkpoint FILE]...",
		Short: "Verify an environment's audit hash chain; report the first broken link",
		Long: "verify fetches a signed checkpoint of the environment's audit chain and checks its signature (with --key, " +
			"a public key you hold; otherwise the one the server publishes), then downloads the whole trail and " +
			"recomputes every hash: an event edited, deleted, inserted or moved breaks the chain there, and the first " +
			"broken link is reported (exit 1). Each --checkpoint FILE (with FILE.sig beside it, as `audit checkpoint` " +
			"wrote them) is checked too, and the chain must pass through it: that catches history rewritten with " +
			"every later hash recomputed, or events removed from the end. A reader key is enough.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pem, source := []byte(nil), ""
			if keyFile != "" {
				if pem, err = os.ReadFile(keyFile); err != nil {
					return err
				}
				source = keyFile
			} else {
				if pem, _, err = cl.PublicKey(ctx, env); err != nil {
					return err
				}
				source = "server's " + env + " key (pass --key for an independent check)"
			}
			ring, err := signing.NewKeyring(pem)
			if err != nil {
				return err
			}
			var steps []verifyStep
			var expect []audit.Checkpoint
			check := func(what string, payload []byte, sig string) {
				keyID, err := ring.Identify(payload, strings.TrimSpace(sig))
				if err != nil {
					steps = append(steps, verifyStep{what, false, "signature does not verify with the " + source})
					return
				}
				cp, err := audit.ParseCheckpoint(payload)
				switch {
				case err != nil:
					steps = append(steps, verifyStep{what, false, err.Error()})
				case cp.Environment != env:
					steps = append(steps, verifyStep{what, false, fmt.Sprintf("a checkpoint of %q, not %q", cp.Environment, env)})
				default:
					expect = append(expect, cp)
					steps = append(steps, verifyStep{what, true, fmt.Sprintf("%d events, head %s, %s, signed by %s",
						cp.Count, orNone(cp.HeadHash), cp.Time.Format(time.RFC3339), keyID)})
				}
			}
			for _, f := range kept {
				payload, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				sig, err := os.ReadFile(f + ".sig")
				if err != nil {
					return err
				}
				check("checkpoint "+f, payload, string(sig))
			}
			cp, err := cl.AuditCheckpoint(ctx, env)
			if err != nil {
				return err
			}
			check("current checkpoint", cp.Payload, cp.Signature)

			rep, err := cl.VerifyAuditChain(ctx, env, expect...)
			if err != nil {
				return err
			}
			chain := verifyStep{Check: "hash chain", OK: rep.Broken == nil,
				Detail: fmt.Sprintf("%d events, head seq %d %s", rep.Events, rep.Head.Seq, orNone(rep.Head.Hash))}
			if rep.Broken != nil {
				chain.Detail = rep.Broken.Error()
			}
			steps = append(steps, chain)
			if !c.reportSteps(steps, 20, map[string]any{"chain": rep}) {
				return errors.New("audit verification failed")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().StringVar(&keyFile, "key", "", "cosign public key of the environment (default: fetched from the server)")
	cmd.Flags().StringArrayVar(&kept, "checkpoint", nil, "a kept checkpoint.json (its .sig beside it) the chain must pass through; repeatable")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	return cmd
}
