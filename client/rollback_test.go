package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRollbackRetries: a rollback to a named version is repeated after a
// transient failure (it is idempotent); one to the default target is not,
// since a repeat after a lost answer would roll back the rollback.
func TestRollbackRetries(t *testing.T) {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	var waits []time.Duration
	c := New(srv.URL, "sgk_x", nil).WithRetry(recordingPolicy(&waits))
	ctx := context.Background()
	if _, err := c.Rollback(ctx, "prod", RollbackRequest{Name: "a", Reason: "r"}); err == nil || n != 1 {
		t.Fatalf("default-target rollback: %d attempts, %v; want 1", n, err)
	}
	n = 0
	if _, err := c.Rollback(ctx, "prod", RollbackRequest{Name: "a", Version: "1.0.0", Reason: "r"}); err == nil || n != DefaultRetry().Attempts {
		t.Fatalf("rollback to a named version: %d attempts, %v; want %d", n, err, DefaultRetry().Attempts)
	}
}
