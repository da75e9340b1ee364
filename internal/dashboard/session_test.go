package dashboard

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"time"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func TestSessionLifetime(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)}
	st := newSessionStore(30*time.Minute, 2*time.Hour, 2, c.Now)
	mk := func() string {
		t.Helper()
		id, err := st.create(&session{keys: []envKey{{Env: "prod", token: "sg_x"}}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	tests := []struct {
		name  string
		steps []time.Duration // clock advances, each followed by a use
		alive bool
	}{
		{"used often stays", []time.Duration{20 * time.Minute, 20 * time.Minute, 20 * time.Minute}, true},
		{"idle expires", []time.Duration{31 * time.Minute}, false},
		{"max age expires even when used", []time.Duration{25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := mk()
			alive := true
			for _, d := range tt.steps {
				c.now = c.now.Add(d)
				if _, ok := st.get(id); !ok {
					alive = false
					break
				}
			}
			if alive != tt.alive {
				t.Errorf("alive = %v, want %v", alive, tt.alive)
			}
			st.end(id)
		})
	}

	// The store is bounded: a third live session is refused, and an
	// expired one makes room.
	a, b := mk(), mk()
	if _, err := st.create(&session{}); err != errTooManySessions {
		t.Fatalf("third session: %v, want errTooManySessions", err)
	}
	c.now = c.now.Add(time.Hour)
	if _, err := st.create(&session{}); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if _, ok := st.get(a); ok {
		t.Error("expired session a still answers")
	}
	st.end(b)
	if _, ok := st.get(b); ok {
		t.Error("ended session b still answers")
	}
	if _, ok := st.get(""); ok {
		t.Error("the empty id names a session")
	}
}

func TestSessionKey(t *testing.T) {
	s := &session{keys: []envKey{{Env: "staging"}, {Env: "prod"}}, order: []string{"dev", "staging", "prod"}}
	if k, ok := s.key("prod"); !ok || k.Env != "prod" {
		t.Errorf("key(prod) = %+v %v", k, ok)
	}
	// A key the person lacks: another of theirs, so that the API refuses.
	if k, ok := s.key("dev"); ok || k.Env != "staging" {
		t.Errorf("key(dev) = %+v %v, want staging's key and false", k, ok)
	}
	if got := s.previous("prod"); got != "staging" {
		t.Errorf("previous(prod) = %q", got)
	}
	if got := s.previous("dev"); got != "" {
		t.Errorf("previous(dev) = %q", got)
	}
	if _, ok := (&session{}).key("prod"); ok {
		t.Error("an empty session holds a key")
	}
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/ui/artifacts/a", "/ui/artifacts/a"},
		{"/ui/audit?env=prod", "/ui/audit?env=prod"},
		{"", "/ui/"},
		{"https://evil.example/ui/", "/ui/"},
		{"//evil.example/ui/", "/ui/"},
		{"/ui/\\evil", "/ui/"},
		{"/v1/whoami", "/ui/"},
		{"/ui/\r\nSet-Cookie: x", "/ui/"},
		{"/ui/../v1/whoami", "/ui/"},
		{"/ui/%2e%2e/v1/whoami", "/ui/"},
		{"/ui/artifacts/team/agent", "/ui/artifacts/team/agent"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.in); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSafeNext: whatever a sign-in link carries, the redirect after
// sign-in stays on the dashboard.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/ui/", "//x", "/ui/../v1", "/ui/%2f%2fx", "\\\\x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(path.Clean(u.Path)+"/", "/ui/") ||
			strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n") {
			t.Fatalf("safeNext(%q) = %q leaves the dashboard", next, got)
		}
	})
}
