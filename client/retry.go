package client

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RetryPolicy says how the client retries transient failures: connection
// errors and 502, 503, 504 and 429 answers. Every request the CLI sends is
// safe to repeat (blob uploads are create-once by digest, publishing the
// same content again is an idempotent success, evidence is keyed by its
// digest, a promotion already made answers with its release, and
// approvals are counted per person), so a retry never doubles a side
// effect. Key creation is the exception and is never retried.
type RetryPolicy struct {
	// Attempts is the total number of tries (1 turns retries off).
	Attempts int
	// BaseDelay is the first backoff; each retry doubles it, up to MaxDelay,
	// and full jitter picks a random wait below that.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxRetryAfter caps a server's Retry-After, so that a misconfigured
	// proxy cannot park a pipeline for hours.
	MaxRetryAfter time.Duration
	// OnRetry, when set, is told before each wait (the CLI prints it).
	OnRetry func(RetryEvent)

	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(max time.Duration) time.Duration
}

// RetryEvent describes one retry about to happen.
type RetryEvent struct {
	Method, URL string
	Attempt     int // the attempt that failed, from 1
	Wait        time.Duration
	Err         error
}

// DefaultRetry is five attempts over about half a minute.
func DefaultRetry() RetryPolicy {
	return RetryPolicy{Attempts: 5, BaseDelay: 500 * time.Millisecond, MaxDelay: 15 * time.Second, MaxRetryAfter: 2 * time.Minute}
}

// NoRetry sends each request once.
func NoRetry() RetryPolicy { return RetryPolicy{Attempts: 1} }

// WithRetry replaces the client's retry policy.
func (c *Client) WithRetry(p RetryPolicy) *Client {
	c.retry = p
	return c
}

type noRetryKey struct{}

// withoutRetry marks requests that are not safe to repeat.
func withoutRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetryKey{}, true)
}

// backoff is the wait before retry number attempt (from 1): capped
// exponential with full jitter, or the server's Retry-After when it gave
// one (retryAfter >= 0; capped too).
func (p RetryPolicy) backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter >= 0 {
		return min(retryAfter, p.MaxRetryAfter)
	}
	ceiling := p.BaseDelay
	for i := 1; i < attempt && ceiling < p.MaxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.MaxDelay)
	if p.jitter != nil {
		return p.jitter(ceiling)
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling))) + 1
}

func (p RetryPolicy) wait(ctx context.Context, d time.Duration) error {
	if p.sleep != nil {
		return p.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// transient reports whether a failed attempt may succeed if repeated, and
// the server's Retry-After (-1: none).
func transient(ctx context.Context, resp *http.Response, err error) (bool, time.Duration) {
	if ctx.Err() != nil || err == nil {
		return false, -1
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true, ae.retryAfter
		}
		return false, -1
	}
	return connectionError(err), -1
}

// connectionError reports failures of the connection itself: refused,
// reset, closed early, timed out. Errors of the local side (an unreadable
// file, a bad URL) are not retried.
func connectionError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &oe):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	}
	// net/http reports a connection closed before the answer this way.
	msg := err.Error()
	return strings.Contains(msg, "server closed idle connection") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "EOF")
}

// parseRetryAfter reads Retry-After: seconds, or an HTTP date; -1 when
// absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return -1
		}
		return time.Duration(min(s, 1<<20)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return -1
}
