package main

import (
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func (c *cli) auditCommand() *cobra.Command {
	var env, action, target, actor, outcome, since string
	var limit int
	cmd := &cobra.Command{
		Use:   "audit --env ENV",
		Short: "Query an environment's audit trail, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"action": action, "target": target, "actor": actor, "outcome": outcome, "since": since} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			events, err := cl.Audit(cmd.Context(), env, q)
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(map[string]any{"environment": env, "events": events})
			}
			t := newTable(c.stdout, "ID", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "CODE")
			for _, e := range events {
				t.row(strconv.FormatInt(e.ID, 10), e.Time.Format(time.RFC3339), e.Actor, e.Action, e.Target, string(e.Outcome), e.ErrorCode)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().StringVar(&action, "action", "", "filter by action (e.g. artifact.publish)")
	cmd.Flags().StringVar(&target, "target", "", "filter by target (a trailing * matches a prefix)")
	cmd.Flags().StringVar(&actor, "actor", "", "filter by actor")
	cmd.Flags().StringVar(&outcome, "outcome", "", "success, denied or failed")
	cmd.Flags().StringVar(&since, "since", "", "RFC 3339 time")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many events (default 100, max 1000)")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	return cmd
}
