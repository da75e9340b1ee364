package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stagegate/stagegate/client"
)

// clientVerb marks commands that talk to a server: their flags may come
// from STAGEGATE_* variables, so a pipeline can configure every verb
// without a command line (and nothing ever prompts).
const clientVerb = "stagegate.client-verb"

// envName is the variable that stands for a flag: --promote-to is
// STAGEGATE_PROMOTE_TO.
func envName(flag string) string {
	return "STAGEGATE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv fills every flag of a client verb that the command line left
// unset from its STAGEGATE_* variable. Flags win over variables. A
// repeatable flag takes one value per line of its variable.
func (c *cli) bindEnv(cmd *cobra.Command, _ []string) error {
	if cmd.Annotations[clientVerb] != "true" {
		return nil
	}
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		v := c.getenv(envName(f.Name))
		if v == "" {
			return
		}
		values := []string{v}
		if strings.HasSuffix(f.Value.Type(), "Array") || strings.HasSuffix(f.Value.Type(), "Slice") {
			values = nil
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					values = append(values, line)
				}
			}
		}
		for _, val := range values {
			if serr := cmd.Flags().Set(f.Name, val); serr != nil {
				err = usageError{fmt.Errorf("$%s: %v", envName(f.Name), serr)}
				return
			}
		}
	})
	return err
}

// retryPolicy is the client's retry policy for --retries, reporting each
// retry on stderr (a pipeline log shows why a step took longer).
func (c *cli) retryPolicy() client.RetryPolicy {
	p := client.DefaultRetry()
	p.Attempts = c.retries + 1
	p.OnRetry = func(e client.RetryEvent) {
		c.retried++
		fmt.Fprintf(c.stderr, "stagegate: %s %s failed (attempt %d): %v; retrying in %s\n",
			e.Method, e.URL, e.Attempt, e.Err, e.Wait.Round(10*time.Millisecond))
	}
	return p
}
