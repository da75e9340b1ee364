package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/registry"
)

func (c *cli) rollbackCommand() *cobra.Command {
	var env, to, reason string
	var dryRun, force bool
	cmd := &cobra.Command{
		Use:   "rollback NAME --env ENV [--to VERSION] --reason TEXT [--dry-run] [--force]",
		Short: "Make an earlier release of a name current again (needs a promoter or admin key of ENV)",
		Long: "rollback appends a release that serves an earlier version again: by default the version of the release " +
			"before the current one, or --to VERSION, which must have been released in ENV before. It first runs the " +
			"rollback gates (the version's bytes and ENV's signature still verify; ENV's freeze windows hold unless an " +
			"admin passes --force). Exit code 3 means a gate refused; 1 an error, such as a version never released in ENV.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return usageError{errors.New("--env is required")}
			}
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("--reason is required: say why (it is recorded in the release and the audit trail)")}
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			res, err := cl.Rollback(cmd.Context(), env, client.RollbackRequest{Name: args[0], Version: to, Reason: reason, DryRun: dryRun, Force: force})
			var ae *client.APIError
			if errors.As(err, &ae) && !c.json() {
				switch ae.Code {
				case registry.CodeGateFailed.Name:
					var gf client.GateFailure
					if json.Unmarshal(ae.Details, &gf) == nil {
						c.printChecks(gf.Report.Results)
						fmt.Fprintf(c.stdout, "\nrollback refused by %s's rollback gates (gate run %s)\n", env, gf.GateRunID)
					}
					return gateRefused{ae}
				case registry.CodeNotEligible.Name:
					var ne client.NotEligible
					if json.Unmarshal(ae.Details, &ne) == nil {
						fmt.Fprintf(c.stderr, "stagegate: %s: %s\n", ae.Code, ae.Message)
						if len(ne.Eligible) == 0 {
							fmt.Fprintf(c.stderr, "no version of %s can be rolled back to in %s\n", args[0], env)
						} else {
							fmt.Fprintf(c.stderr, "eligible versions (released in %s before, newest first): %s\n", env, strings.Join(ne.Eligible, ", "))
						}
						return reported{ae}
					}
				}
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
			switch res.Outcome {
			case api.RollbackDryRun:
				fmt.Fprintf(c.stdout, "dry run: every rollback gate passes; %s in %s can be rolled back from %s to %s (gate run %s)\n",
					args[0], env, res.Previous.Version, res.Version, res.GateRun.ID)
			case api.RollbackUnchanged:
				fmt.Fprintf(c.stdout, "%s@%s is current in %s already (release %d); nothing changed\n", res.Release.Name, res.Release.Version, env, res.Release.Number)
			default:
				fmt.Fprintf(c.stdout, "rolled back %s in %s from %s to %s: release %d, attested by %s's key (gate run %s)\n",
					res.Release.Name, env, res.Previous.Version, res.Release.Version, res.Release.Number, env, res.Release.GateRunID)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().StringVar(&to, "to", "", "version to make current (default: the version of the release before the current one)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the release and the audit trail)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "run the rollback gates and change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "roll back during a freeze window (admin keys only; recorded)")
	c.addClientFlags(cmd, true)
	return cmd
}

// reported is an API error already explained on stderr: it exits 1
// without being printed again.
type reported struct{ *client.APIError }

func (c *cli) statusCommand() *cobra.Command {
	var env, at, name string
	cmd := &cobra.Command{
		Use:   "status --env ENV [--at TIME] [--name NAME]",
		Short: "What an environment serves: every name's current release, now or at an earlier time",
		Long: "status lists, for every name released in ENV (or --name alone), the release that was current at --at: " +
			"version, release number, action, who made it, when, its gate run and reason. --at is RFC 3339 " +
			"(2026-11-24T14:00:00+01:00), or 2026-11-24T14:00 or 2026-11-24 in the local time zone; without it, or " +
			"in the future, it is now. A name first released after --at is not listed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return usageError{errors.New("--env is required")}
			}
			var when time.Time
			if at != "" {
				var err error
				if when, err = parseWhen(at); err != nil {
					return usageError{err}
				}
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			st, err := cl.ReleasesAt(cmd.Context(), env, when, name)
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(st)
			}
			if len(st.Releases) == 0 {
				fmt.Fprintf(c.stdout, "nothing was released in %s at %s\n", env, st.At.Format(time.RFC3339))
				return nil
			}
			fmt.Fprintf(c.stdout, "%s at %s\n", env, st.At.Format(time.RFC3339))
			t := newTable(c.stdout, "NAME", "VERSION", "RELEASE", "ACTION", "BY", "SINCE", "GATE RUN", "REASON")
			for _, r := range st.Releases {
				t.row(r.Name, r.Version, strconv.FormatInt(r.Number, 10), releaseAction(r), r.Actor, r.CreatedAt.Format(time.RFC3339), r.GateRunID, oneLine(r.Reason))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().StringVar(&at, "at", "", "instant to answer for (default: now)")
	cmd.Flags().StringVar(&name, "name", "", "only this name")
	c.addClientFlags(cmd, true)
	return cmd
}

// releaseAction is a release's action as the tables print it: a rollback
// an admin forced past the freeze windows says so.
func releaseAction(r registry.Release) string {
	if r.Forced {
		return r.Action + " (forced)"
	}
	return r.Action
}

func (c *cli) historyCommand() *cobra.Command {
	var env string
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use:   "history NAME --env ENV [--limit N] [--before NUMBER]",
		Short: "List the releases of a name in an environment, newest first, numbered per name",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return usageError{errors.New("--env is required")}
			}
			if limit < 0 || before < 0 {
				return usageError{errors.New("--limit and --before must not be negative")}
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			page, err := cl.History(cmd.Context(), env, args[0], limit, before)
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(page)
			}
			t := newTable(c.stdout, "RELEASE", "VERSION", "ACTION", "FROM", "BY", "AT", "GATE RUN", "REASON")
			for _, r := range page.Releases {
				from := r.Source
				if r.Action == registry.ReleaseRollback && r.TriggeredBy != "" {
					from = r.TriggeredBy
				}
				t.row(strconv.FormatInt(r.Number, 10), r.Version, releaseAction(r), from, r.Actor, r.CreatedAt.Format(time.RFC3339), r.GateRunID, oneLine(r.Reason))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if page.NextBefore > 0 {
				fmt.Fprintf(c.stdout, "older releases: --before %d\n", page.NextBefore)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many releases (default 100, at most 1000)")
	cmd.Flags().Int64Var(&before, "before", 0, "only releases numbered below this (the cursor printed after a page)")
	c.addClientFlags(cmd, true)
	return cmd
}

func (c *cli) gateRunCommand() *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "gate-run ID --env ENV",
		Short: "Show a stored gate run: what it judged, under which policy, and every check's result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return usageError{errors.New("--env is required")}
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			run, err := cl.GateRun(cmd.Context(), env, args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(run)
			}
			verdict := "passed"
			if !run.Passed {
				verdict = "refused"
			}
			kind := "promotion from " + run.Source
			if run.Source == run.Environment {
				kind = "rollback"
			}
			if run.DryRun {
				kind += ", dry run"
			}
			fmt.Fprintf(c.stdout, "gate run %s: %s@%s in %s (%s) %s, by %s at %s\npolicy %s\n\n",
				run.ID, run.Name, run.Version, run.Environment, kind, verdict, run.Actor, run.StartedAt.Format(time.RFC3339), run.PolicyDigest)
			var report client.GateReport
			if err := json.Unmarshal(run.Report, &report); err != nil {
				return fmt.Errorf("gate run %s: unreadable report: %w", run.ID, err)
			}
			c.printChecks(report.Results)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment the gate run judged for")
	c.addClientFlags(cmd, true)
	return cmd
}

// parseWhen reads --at: RFC 3339, or a local date and time.
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--at %q: want RFC 3339 (2026-11-24T14:00:00+01:00), 2026-11-24T14:00 or 2026-11-24", s)
}

// oneLine keeps a reason on its table row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
