package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/client"
)

// Exit codes. Scripts rely on them: 3 means "a gate refused", distinct
// from 1 "something went wrong".
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitGateFailed = 3
)

// cli carries what every verb shares.
type cli struct {
	stdout, stderr io.Writer
	output         string // text | json
	url, token     string
	getenv         func(string) string
	oidcAudience   string // --oidc-audience: fetch the Actions job's OIDC token instead of a key
	retries        int    // --retries: transient failures retried per request
	retried        int    // retries made so far (reported by `ci`)
}

// usageError marks errors in the command line itself.
type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	return c.reportError(err)
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "stagegate",
		Short:         "Release gate for AI artifacts: publish, promote, roll back, audit",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRunE = c.bindEnv
	root.AddCommand(c.serveCommand(), c.keysCommand(), c.pushCommand(), c.pullCommand(),
		c.versionsCommand(), c.artifactsCommand(), c.showCommand(), c.resolveCommand(), c.auditCommand(), c.whoamiCommand(),
		c.verifyCommand(), c.promoteCommand(), c.approveCommand(), c.evidenceCommand(), c.historyCommand())
	root.AddCommand(c.rollbackCommand(), c.statusCommand(), c.gateRunCommand())
	root.AddCommand(c.healthcheckCommand())
	root.AddCommand(c.ciCommand())
	root.AddCommand(c.gcCommand())
	root.AddCommand(c.scrubCommand())
	root.AddCommand(c.reindexCommand())
	return root
}

// addClientFlags registers the flags of verbs that talk to a server.
func (c *cli) addClientFlags(cmd *cobra.Command, withOutput bool) {
	cmd.Flags().StringVar(&c.url, "url", "", "server URL (default $STAGEGATE_URL, else http://127.0.0.1:8080)")
	cmd.Flags().StringVar(&c.token, "token", "", "API key (default $STAGEGATE_TOKEN)")
	cmd.Flags().StringVar(&c.oidcAudience, "oidc-audience", "", "inside GitHub Actions: authenticate with the job's OIDC token for this audience instead of an API key (needs `permissions: id-token: write`)")
	cmd.Flags().IntVar(&c.retries, "retries", 4, "retries of a request after a connection error, 429, 502, 503 or 504 (backoff with jitter)")
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[clientVerb] = "true"
	if withOutput {
		cmd.Flags().StringVarP(&c.output, "output", "o", "text", "output format: text or json")
	}
}

func (c *cli) client() (*client.Client, error) {
	if c.output != "text" && c.output != "json" && c.output != "" {
		return nil, usageError{fmt.Errorf("--output must be text or json, not %q", c.output)}
	}
	u := c.url
	if u == "" {
		u = c.getenv("STAGEGATE_URL")
	}
	if u == "" {
		u = "http://127.0.0.1:8080"
	}
	if c.oidcAudience != "" {
		return c.ciClient("", c.oidcAudience, "this request")
	}
	tok := c.token
	if tok == "" {
		tok = c.getenv("STAGEGATE_TOKEN")
	}
	if tok == "" {
		return nil, usageError{errors.New("no API key: set STAGEGATE_TOKEN or pass --token (or, inside GitHub Actions, --oidc-audience)")}
	}
	return client.New(u, tok, nil).WithRetry(c.retryPolicy()), nil
}

func (c *cli) json() bool { return c.output == "json" }

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reportError prints err for humans (stderr) or machines (JSON on stdout
// with -o json) and chooses the exit code.
func (c *cli) reportError(err error) int {
	code := exitError
	var ue usageError
	if errors.As(err, &ue) {
		code = exitUsage
	}
	var explained reported
	if errors.As(err, &explained) {
		return exitError
	}
	var refused gateRefused
	if errors.As(err, &refused) {
		fmt.Fprintf(c.stderr, "stagegate: %s: %s\n", refused.Code, refused.Message)
		return exitGateFailed
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		if ae.Code == "gate_failed" {
			code = exitGateFailed
		}
		if c.json() {
			_ = c.printJSON(map[string]any{"error": map[string]any{"code": ae.Code, "message": ae.Message, "status": ae.Status, "details": ae.Details}})
		} else {
			fmt.Fprintf(c.stderr, "stagegate: %s: %s\n", ae.Code, ae.Message)
			if len(ae.Details) > 0 && string(ae.Details) != "null" {
				fmt.Fprintf(c.stderr, "details: %s\n", ae.Details)
			}
		}
		return code
	}
	if c.json() {
		_ = c.printJSON(map[string]any{"error": map[string]any{"code": "client_error", "message": err.Error()}})
	} else {
		fmt.Fprintf(c.stderr, "stagegate: %v\n", err)
	}
	return code
}
