package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/client"
)

func (c *cli) promoteCommand() *cobra.Command {
	var to, from, reason string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "promote NAME@VERSION --to ENV [--dry-run] [--reason TEXT]",
		Short: "Promote a version into the next environment through its gates (needs a promoter key of the target)",
		Long: "promote runs the target environment's gate policy against the version in the environment before it and, " +
			"when every required check passes, copies it, signs it with the target's key and makes it the current release. " +
			"Exit code 3 means a gate refused (the table says which check and why); 1 means an error.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, cl, err := c.refClient(args[0])
			if err != nil {
				return err
			}
			res, err := cl.Promote(cmd.Context(), to, client.PromoteRequest{Name: name, Version: version, From: from, Reason: reason, DryRun: dryRun})
			var ae *client.APIError
			if errors.As(err, &ae) && ae.Code == "gate_failed" && !c.json() {
				var gf client.GateFailure
				if json.Unmarshal(ae.Details, &gf) == nil {
					c.printChecks(gf.Report.Results)
					fmt.Fprintf(c.stdout, "\npromotion refused by %s's gates (gate run %s)\n", to, gf.GateRunID)
				}
				return gateRefused{ae}
			}
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(res)
			}
			if res.Report != nil {
				c.printChecks(res.Report.Results)
				fmt.Fprintln(c.stdout)
			}
			switch {
			case res.DryRun:
				fmt.Fprintf(c.stdout, "dry run: every required check passes; %s@%s can be promoted into %s (gate run %s)\n", name, version, to, res.GateRun.ID)
			case res.Created:
				fmt.Fprintf(c.stdout, "promoted %s@%s into %s: release %d, signed by %s's key\n", res.Release.Name, res.Release.Version, to, res.Release.Number, to)
			default:
				fmt.Fprintf(c.stdout, "%s@%s was already promoted into %s: release %d\n", res.Release.Name, res.Release.Version, to, res.Release.Number)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "target environment")
	cmd.Flags().StringVar(&from, "from", "", "source environment; optional, and if given must be the one before the target (the server refuses any other)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the release and audit trail)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "run the gates and change nothing")
	_ = cmd.MarkFlagRequired("to")
	c.addClientFlags(cmd, true)
	return cmd
}

// gateRefused is a promotion the gates refused, after its table was
// printed; it exits with exitGateFailed.
type gateRefused struct{ *client.APIError }

// printChecks writes the gate table: every check, its status and reason.
func (c *cli) printChecks(results []client.CheckResult) {
	t := newTable(c.stdout, "CHECK", "FAMILY", "STATUS", "REASON")
	for _, r := range results {
		status := strings.ToUpper(r.Status)
		if !r.Required {
			status += " (advisory)"
		}
		t.row(r.Check, r.Family, status, r.Reason)
	}
	_ = t.flush()
}

func (c *cli) approveCommand() *cobra.Command {
	var env, comment string
	cmd := &cobra.Command{
		Use:   "approve NAME@VERSION --env ENV [--comment TEXT]",
		Short: "Approve promoting a version into ENV (needs an approver key of ENV)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, cl, err := c.refClient(args[0])
			if err != nil {
				return err
			}
			a, err := cl.Approve(cmd.Context(), env, name, version, comment)
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(a)
			}
			fmt.Fprintf(c.stdout, "%s approved %s@%s for %s (manifest %s)\n", a.Actor, a.Name, a.Version, a.Environment, a.ManifestDigest)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment the version is to be promoted into")
	cmd.Flags().StringVar(&comment, "comment", "", "note recorded with the approval")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	return cmd
}

func (c *cli) evidenceCommand() *cobra.Command {
	evidence := &cobra.Command{Use: "evidence", Short: "Attach and read evidence (test reports, metrics, provenance)"}
	var env, typ string
	add := &cobra.Command{
		Use:   "add NAME@VERSION --type junit|metrics|provenance FILE",
		Short: "Attach an evidence document to a version in the first environment",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, err := splitRef(args[0])
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			if env == "" {
				if env, err = c.credentialEnvironment(cmd, cl); err != nil {
					return err
				}
			}
			doc, created, err := cl.AddEvidence(cmd.Context(), env, name, version, typ, data)
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(map[string]any{"created": created, "evidence": doc})
			}
			verb := "attached"
			if !created {
				verb = "already attached"
			}
			fmt.Fprintf(c.stdout, "%s %s evidence %s to %s@%s in %s\n", verb, doc.Type, doc.Digest, doc.Name, doc.Version, doc.Environment)
			return nil
		},
	}
	add.Flags().StringVar(&typ, "type", "", "junit, metrics or provenance")
	add.Flags().StringVar(&env, "env", "", "environment (default: the first)")
	_ = add.MarkFlagRequired("type")
	c.addClientFlags(add, true)
	evidence.AddCommand(add)

	var getEnv, getType, digest string
	get := &cobra.Command{
		Use:   "get NAME@VERSION --env ENV --type junit|metrics|provenance [--digest DIGEST]",
		Short: "Write an evidence document of a version to stdout, verified against its digest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, cl, err := c.refClient(args[0])
			if err != nil {
				return err
			}
			data, dgst, err := cl.GetEvidence(cmd.Context(), getEnv, name, version, getType, digest)
			if err != nil {
				return err
			}
			if _, err := c.stdout.Write(data); err != nil {
				return err
			}
			fmt.Fprintf(c.stderr, "%s evidence %s of %s@%s in %s\n", getType, dgst, name, version, getEnv)
			return nil
		},
	}
	get.Flags().StringVar(&getEnv, "env", "", "environment to read from")
	get.Flags().StringVar(&getType, "type", "", "junit, metrics or provenance")
	get.Flags().StringVar(&digest, "digest", "", "one document of several of the type, by digest (default: the newest)")
	_ = get.MarkFlagRequired("env")
	_ = get.MarkFlagRequired("type")
	c.addClientFlags(get, false)
	evidence.AddCommand(get)
	return evidence
}
