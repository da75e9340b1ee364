// Package dashboard is stagegate's web dashboard, served under /ui/.
//
// It holds no access of its own. Every page is built from REST API calls
// made, in process, with the API keys the signed-in person typed in, so the
// dashboard shows exactly what those keys may read and the API refuses the
// rest: a dev key cannot show prod data here for the same reason it cannot
// with curl. Pages are server-rendered html/template without any script;
// forms carry a per-session CSRF token.
package dashboard

import (
	"embed"
	"log/slog"
	"net/http"
	"time"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options configure a Dashboard.
type Options struct {
	// API is the REST API handler; the dashboard sends it requests in
	// process, each with one of the person's own keys.
	API http.Handler
	// KeyFields is how many key inputs the sign-in form offers (one per
	// configured environment is plenty). Default 3.
	KeyFields int
	// IdleTimeout ends a session left unused this long (default 30 min);
	// MaxAge ends any session this long after sign-in (default 12 h).
	IdleTimeout, MaxAge time.Duration
	// MaxSessions bounds the sessions held in memory (default 10000); a
	// sign-in beyond it is refused until some expire.
	MaxSessions int
	Logger      *slog.Logger
	Now         func() time.Time
}

// Dashboard serves /ui/.
type Dashboard struct {
	opts     Options
	sessions *sessionStore
	pages    map[string]*pageTemplate
	mux      *http.ServeMux
	hc       *http.Client
}

// New builds the dashboard. Its templates are embedded and parsed here;
// a template that does not parse is a programming error and panics (the
// package's tests parse every one).
func New(o Options) *Dashboard {
	if o.KeyFields <= 0 {
		o.KeyFields = 3
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Minute
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 12 * time.Hour
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &Dashboard{
		opts:     o,
		sessions: newSessionStore(o.IdleTimeout, o.MaxAge, o.MaxSessions, o.Now),
		pages:    parsePages(),
		hc:       &http.Client{Transport: inProcess{h: o.API}},
	}
	d.routes()
	return d
}

func (d *Dashboard) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	})
	m.HandleFunc("GET /ui/static/style.css", d.style)
	m.HandleFunc("GET /ui/signin", d.signinForm)
	m.HandleFunc("POST /ui/signin", d.signin)
	m.HandleFunc("POST /ui/signout", d.signout)
	m.HandleFunc("GET /ui/{$}", d.authed(d.matrix))
	m.HandleFunc("GET /ui/artifacts/{name...}", d.authed(d.artifact))
	m.HandleFunc("GET /ui/environments/{env}/gate-runs/{id}", d.authed(d.gateRun))
	m.HandleFunc("GET /ui/environments/{env}/attestation", d.authed(d.attestation))
	m.HandleFunc("GET /ui/environments/{env}/evidence", d.authed(d.evidence))
	m.HandleFunc("GET /ui/audit", d.authed(d.audit))
	m.HandleFunc("GET /ui/audit/export", d.authed(d.auditExport))
	m.HandleFunc("GET /ui/approve", d.authed(d.approveForm))
	m.HandleFunc("POST /ui/approve", d.form(d.approve))
	m.HandleFunc("POST /ui/promote/preview", d.form(d.promotePreview))
	m.HandleFunc("POST /ui/promote", d.form(d.promote))
	m.HandleFunc("GET /ui/rollback", d.authed(d.rollbackForm))
	m.HandleFunc("POST /ui/rollback", d.form(d.rollback))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, nil, http.StatusNotFound, "No such page.")
	})
	d.mux = m
}

// contentSecurityPolicy allows nothing but this origin's stylesheet and
// forms: no script runs on these pages at all, inline or not, and no other
// site may frame them.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves a request under /ui/.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	// Pages are built from what the person's keys may read: no shared or
	// back-button cache may keep them after sign-out.
	h.Set("Cache-Control", "no-store")
	d.mux.ServeHTTP(w, r)
}

func (d *Dashboard) style(w http.ResponseWriter, r *http.Request) {
	data, err := assets.ReadFile("static/style.css")
	if err != nil {
		http.Error(w, "missing stylesheet", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	// Explicitly: the API router in front answers unrouted paths 404 unless told otherwise.
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}
