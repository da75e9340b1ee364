package client

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/auth/oidctest"
)

func TestActionsTokenSource(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	is := oidctest.NewIssuer(t, clock)
	ep := is.ActionsEndpoint(map[string]any{"repository": "acme/model"})
	env := map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": ep.URL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": ep.RequestToken}
	ts, err := NewActionsTokenSource(func(k string) string { return env[k] }, "stagegate-dev")
	if err != nil {
		t.Fatal(err)
	}
	ts.Now = clock
	ctx := context.Background()
	a, err := ts.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ts.Token(ctx)
	if a != b || len(ep.Audiences()) != 1 || ep.Audiences()[0] != "stagegate-dev" {
		t.Fatalf("a fresh token is reused: %d fetches, audiences %v", len(ep.Audiences()), ep.Audiences())
	}
	// A minute before expiry (GitHub's tokens live five), a new one.
	mu.Lock()
	now = now.Add(4*time.Minute + time.Second)
	mu.Unlock()
	c, _ := ts.Token(ctx)
	if c == a || len(ep.Audiences()) != 2 {
		t.Fatal("a token about to expire is replaced")
	}
	ts.Invalidate(c)
	if d, _ := ts.Token(ctx); d == c {
		t.Fatal("an invalidated token is replaced")
	}

	if _, err := NewActionsTokenSource(func(string) string { return "" }, "x"); err == nil || !strings.Contains(err.Error(), "id-token: write") {
		t.Fatalf("without the endpoint the error names the permission: %v", err)
	}
	bad := &ActionsTokenSource{RequestURL: ep.URL, RequestToken: "wrong", Audience: "x"}
	if _, err := bad.Token(ctx); err == nil {
		t.Fatal("a wrong request token is refused")
	}
}

// A 401 for a token that went stale is answered by fetching a new one, once.
func TestClientRefreshesTokenOn401(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		if len(seen) == 1 {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"token_expired","message":"expired"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"environment":"dev","role":"publisher","actor":"ci","credentialId":"oidc_1"}`))
	}))
	defer srv.Close()
	ts := &countingSource{}
	c := New(srv.URL, "", nil).WithTokenSource(ts)
	if _, err := c.Whoami(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] == seen[1] || ts.invalidated != 1 {
		t.Fatalf("authorizations %v, invalidated %d", seen, ts.invalidated)
	}
}

type countingSource struct {
	n, invalidated int
}

func (s *countingSource) Token(context.Context) (string, error) {
	s.n++
	return "tok-" + string(rune('0'+s.n)), nil
}

func (s *countingSource) Invalidate(string) { s.invalidated++ }

func TestLineProgress(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := LineProgress(&out, 10*time.Second, func() time.Time { return now })
	quick := p.Start("upload small.json", 10)
	quick.Set(10)
	quick.Done(nil)
	if out.Len() != 0 {
		t.Fatalf("a quick transfer prints nothing: %q", out.String())
	}
	slow := p.Start("upload model.bin", 100<<20)
	now = now.Add(5 * time.Second)
	slow.Set(10 << 20)
	now = now.Add(5 * time.Second)
	slow.Set(20 << 20)
	now = now.Add(5 * time.Second)
	slow.Set(30 << 20)
	now = now.Add(30 * time.Second)
	slow.Set(100 << 20)
	slow.Done(nil)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "20.0 MiB of 100.0 MiB (20%), 2.0 MiB/s, ETA 40s") ||
		!strings.Contains(lines[2], "upload model.bin: 100.0 MiB in 45s") {
		t.Fatalf("lines:\n%s", out.String())
	}
	if NewProgress(&out, true) != nil {
		t.Fatal("quiet shows nothing")
	}
	if _, ok := NewProgress(&out, false).(*lineProgress); !ok {
		t.Fatal("a non-terminal gets plain lines")
	}
}
