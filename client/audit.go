package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
)

// AuditCheckpoint is a signed head of an environment's audit chain.
type AuditCheckpoint = api.AuditCheckpoint

func (c *Client) auditURL(env, rest string, q url.Values) string {
	u := c.baseURL + "/v1/environments/" + url.PathEscape(env) + "/audit" + rest
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// AuditPage returns one page of env's audit trail, newest first, with the
// cursor of the next page (Next, passed back as "before"; "" on the last
// page).
func (c *Client) AuditPage(ctx context.Context, env string, q url.Values) (api.AuditEventList, error) {
	var out api.AuditEventList
	err := c.doJSON(ctx, http.MethodGet, c.auditURL(env, "", q), nil, &out)
	return out, err
}

// OpenAuditExport starts an export of env's audit trail (filters as for
// Audit; since and until bound it) and returns the JSON Lines body, oldest
// event first. A stream the server cuts short fails on Read with an error;
// it never just ends early.
func (c *Client) OpenAuditExport(ctx context.Context, env string, q url.Values) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, c.auditURL(env, "/export", q), nil, -1, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// maxAuditLine bounds one exported event; events are far smaller.
const maxAuditLine = 4 << 20

// ExportAudit streams env's audit trail (see OpenAuditExport) and calls fn
// with each event, in constant memory. It stops at fn's first error.
func (c *Client) ExportAudit(ctx context.Context, env string, q url.Values, fn func(audit.Event) error) error {
	body, err := c.OpenAuditExport(ctx, env, q)
	if err != nil {
		return err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxAuditLine)
	line := 0
	for sc.Scan() {
		line++
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("audit export line %d: %w", line, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("audit export broke off after %d events: %w", line, err)
	}
	return nil
}

// AuditCheckpoint asks the server to sign the head of env's audit chain.
// The signature is only as good as the key it is checked with: verify it
// with the environment's public key held independently (cosign
// verify-blob, or signing.Keyring).
func (c *Client) AuditCheckpoint(ctx context.Context, env string) (AuditCheckpoint, error) {
	var out AuditCheckpoint
	err := c.doJSON(ctx, http.MethodGet, c.auditURL(env, "/checkpoint", nil), nil, &out)
	return out, err
}

// AuditChainReport is what VerifyAuditChain found.
type AuditChainReport struct {
	Environment string `json:"environment"`
	// Events is how many events were checked; Head is the last good one.
	Events int64      `json:"events"`
	Head   audit.Head `json:"head"`
	// Broken is the first broken link, nil when the whole chain holds.
	Broken *audit.BrokenLink `json:"broken,omitempty"`
}

// VerifyAuditChain downloads env's whole audit trail and checks its hash
// chain, and that it passes through every checkpoint in expect (whose
// signatures the caller has verified). It reads the trail in constant
// memory and reports the first broken link in the report, not as an
// error: an error means the check could not be made.
func (c *Client) VerifyAuditChain(ctx context.Context, env string, expect ...audit.Checkpoint) (AuditChainReport, error) {
	chain := audit.NewChain(env)
	for _, cp := range expect {
		if cp.Environment != env {
			return AuditChainReport{}, fmt.Errorf("a checkpoint of %q cannot pin the chain of %q", cp.Environment, env)
		}
		chain.Expect(cp)
	}
	rep := AuditChainReport{Environment: env}
	stop := errors.New("stop")
	err := c.ExportAudit(ctx, env, nil, func(ev audit.Event) error {
		if err := chain.Next(ev); err != nil {
			errors.As(err, &rep.Broken)
			return stop
		}
		rep.Events++
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return AuditChainReport{}, err
	}
	rep.Head = chain.Head()
	if rep.Broken == nil {
		if err := chain.End(); err != nil {
			errors.As(err, &rep.Broken)
		}
	}
	return rep, nil
}
