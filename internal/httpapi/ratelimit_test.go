package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func principal(id string, role auth.Role) auth.Principal {
	return auth.Principal{Environment: "dev", Role: role, Actor: id, CredentialID: id}
}

func TestKeyLimiterRequests(t *testing.T) {
	limits := KeyLimits{Requests: func(r auth.Role) Rate {
		switch r {
		case auth.RoleReader:
			return Rate{PerSecond: 2, Burst: 3}
		case auth.RoleAdmin:
			return Rate{} // unlimited
		}
		return Rate{PerSecond: 0.5, Burst: 1}
	}}
	type step struct {
		at        time.Duration // since t0
		key       string
		role      auth.Role
		wantAfter int // 0: admitted; else the Retry-After in seconds
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"burst then refill", []step{
			{0, "r", auth.RoleReader, 0}, {0, "r", auth.RoleReader, 0}, {0, "r", auth.RoleReader, 0},
			{0, "r", auth.RoleReader, 1}, // 0.5 s to the next token, rounded up
			{400 * time.Millisecond, "r", auth.RoleReader, 1},
			{500 * time.Millisecond, "r", auth.RoleReader, 0},
			{500 * time.Millisecond, "r", auth.RoleReader, 1},
			{2 * time.Second, "r", auth.RoleReader, 0}, {2 * time.Second, "r", auth.RoleReader, 0},
			{2 * time.Second, "r", auth.RoleReader, 0}, {2 * time.Second, "r", auth.RoleReader, 1},
		}},
		{"refused requests take no token", []step{
			{0, "p", auth.RolePublisher, 0},
			{time.Second, "p", auth.RolePublisher, 1}, {time.Second, "p", auth.RolePublisher, 1},
			{1500 * time.Millisecond, "p", auth.RolePublisher, 1}, // 0.5 s left
			{2 * time.Second, "p", auth.RolePublisher, 0},
		}},
		{"the wait is rounded up to whole seconds", []step{
			{0, "slow", auth.RolePublisher, 0}, {0, "slow", auth.RolePublisher, 2},
		}},
		{"keys have their own buckets", []step{
			{0, "a", auth.RolePublisher, 0}, {0, "a", auth.RolePublisher, 2},
			{0, "b", auth.RolePublisher, 0}, {0, "b", auth.RolePublisher, 2},
		}},
		{"an unlimited role", []step{
			{0, "adm", auth.RoleAdmin, 0}, {0, "adm", auth.RoleAdmin, 0}, {0, "adm", auth.RoleAdmin, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newKeyLimiter(limits)
			for i, s := range tc.steps {
				err := l.admit(principal(s.key, s.role), t0.Add(s.at))
				got := 0
				if err != nil {
					var th *throttled
					if !errors.As(err, &th) || registry.AsError(err).Code != registry.CodeRateLimited.Name {
						t.Fatalf("step %d: %v is not a rate_limited refusal", i, err)
					}
					got = th.retryAfterSeconds()
				}
				if got != s.wantAfter {
					t.Fatalf("step %d (%s at +%s): Retry-After %d, want %d (0: admitted)", i, s.key, s.at, got, s.wantAfter)
				}
			}
		})
	}
}

func TestKeyLimiterUploads(t *testing.T) {
	l := newKeyLimiter(KeyLimits{MaxUploads: 2})
	a, b := principal("a", auth.RolePublisher), principal("b", auth.RolePublisher)
	done1, err := l.startUpload(a, t0)
	if err != nil {
		t.Fatal(err)
	}
	done2, err := l.startUpload(a, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.startUpload(a, t0); registry.AsError(err).Code != registry.CodeRateLimited.Name {
		t.Fatalf("a third upload in flight: %v, want rate_limited", err)
	}
	if _, err := l.startUpload(b, t0); err != nil {
		t.Fatalf("another key is not capped by a's uploads: %v", err)
	}
	// An idle sweep must not forget a key with uploads in flight.
	l.mu.Lock()
	l.sweep(t0.Add(time.Hour))
	l.mu.Unlock()
	done1()
	done1() // idempotent: a slot is given back once
	if _, err := l.startUpload(a, t0.Add(time.Hour)); err != nil {
		t.Fatalf("after one upload ended: %v", err)
	}
	if _, err := l.startUpload(a, t0.Add(time.Hour)); err == nil {
		t.Fatal("the slot given back twice counted twice")
	}
	done2()
}

// TestKeyLimiterForgetsIdleKeys: memory is bounded by the keys active
// within a refill time, however many keys were ever seen.
func TestKeyLimiterForgetsIdleKeys(t *testing.T) {
	l := newKeyLimiter(KeyLimits{Requests: func(auth.Role) Rate { return Rate{PerSecond: 10, Burst: 10} }, MaxUploads: 4})
	for i := range 10000 {
		if err := l.admit(principal(fmt.Sprintf("key-%d", i), auth.RoleReader), t0); err != nil {
			t.Fatal(err)
		}
	}
	busy := principal("busy", auth.RolePublisher)
	done, err := l.startUpload(busy, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	// A minute on, every bucket has refilled: the next request sweeps.
	if err := l.admit(principal("late", auth.RoleReader), t0.Add(sweepEvery)); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) != 2 || l.keys["busy"] == nil || l.keys["late"] == nil {
		t.Fatalf("%d keys kept after the sweep, want the busy and the new one", len(l.keys))
	}
}

// TestRateLimitedAnswer: a refusal is 429 with an integer Retry-After and
// the JSON error envelope.
func TestRateLimitedAnswer(t *testing.T) {
	now := t0
	a := &API{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now },
		KeyLimits: KeyLimits{Requests: func(auth.Role) Rate { return Rate{PerSecond: 0.25, Burst: 1} }}}
	a.limiter = newKeyLimiter(a.KeyLimits)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/x", func(c *gin.Context) {
		if err := a.limiter.admit(principal("k", auth.RoleReader), a.Now()); err != nil {
			a.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{})
	})
	get := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
		return w
	}
	if w := get(); w.Code != http.StatusOK || w.Header().Get("Retry-After") != "" {
		t.Fatalf("first request: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	w := get()
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "4" {
		t.Fatalf("second request: %d, Retry-After %q; want 429 and 4", w.Code, w.Header().Get("Retry-After"))
	}
	var body struct {
		Error struct {
			Code    string
			Message string
			Details struct {
				Limit             string
				RetryAfterSeconds int
			}
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Error.Code != "rate_limited" || body.Error.Message == "" || body.Error.Details.Limit != "requests" ||
		body.Error.Details.RetryAfterSeconds != 4 {
		t.Fatalf("body %s", w.Body)
	}
	now = now.Add(3 * time.Second)
	if w := get(); w.Header().Get("Retry-After") != "1" {
		t.Fatalf("a second before the refill: Retry-After %q, want 1", w.Header().Get("Retry-After"))
	}
	now = now.Add(time.Second)
	if w := get(); w.Code != http.StatusOK {
		t.Fatalf("after the refill: %d", w.Code)
	}
}
