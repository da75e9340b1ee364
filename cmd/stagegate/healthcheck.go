package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// defaultHealthURL is the liveness route of a server on the default port,
// as seen from inside its own container.
const defaultHealthURL = "http://127.0.0.1:8080/healthz"

// healthcheckCommand probes a server's liveness route so that a container
// image needs no curl or shell for its HEALTHCHECK: exit 0 when it answers
// 200, 1 otherwise.
func (c *cli) healthcheckCommand() *cobra.Command {
	var target string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the server answers 200 on its liveness route, 1 otherwise (for container health checks)",
		Long: "healthcheck sends GET to --url (a base URL gets /healthz appended) and exits 0 on 200, 1 on " +
			"anything else: another status, no answer within --timeout, a refused connection.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := healthURL(target)
			if err != nil {
				return usageError{err}
			}
			if timeout <= 0 {
				return usageError{errors.New("--timeout must be positive")}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			// No proxy: the probe is of this host's server, and a proxy
			// variable in the container must not turn it into something else.
			client := &http.Client{Transport: &http.Transport{Proxy: nil}}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("unhealthy: %w", err)
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("unhealthy: %s answered %s", u, resp.Status)
			}
			fmt.Fprintf(c.stdout, "healthy: %s\n", u)
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "url", defaultHealthURL, "liveness URL to probe (a URL without a path gets /healthz)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// healthURL completes a base URL with the liveness path.
func healthURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want http(s)://host:port[/path]", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/healthz"
	}
	return u.String(), nil
}
