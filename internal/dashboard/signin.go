package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/client"
)

const (
	sessionCookie = "sg_ui_session"
	// signinCookie holds the sign-in form's token (double submit): a page
	// of another site cannot read it, so it cannot sign a victim's browser
	// in under the attacker's keys.
	signinCookie = "sg_ui_signin"
	maxFormBody  = 64 << 10
)

type pageHandler func(w http.ResponseWriter, r *http.Request, s *session)

// current is the live session of the request's cookie.
func (d *Dashboard) current(r *http.Request) (*session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	return d.sessions.get(c.Value)
}

// authed serves h to signed-in people and sends the others to sign in.
func (d *Dashboard) authed(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := d.current(r)
		if !ok {
			http.Redirect(w, r, "/ui/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r.WithContext(withRequestID(r, w)), s)
	}
}

// form serves h for a POSTed form of a signed-in person: same origin, a
// bounded body, and the session's CSRF token (compared in constant time).
func (d *Dashboard) form(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.readForm(w, r) {
			return
		}
		s, ok := d.current(r)
		if !ok {
			d.fail(w, r, nil, http.StatusForbidden, "Your session has ended: sign in again.")
			return
		}
		if !sameToken(r.PostForm.Get("csrf"), s.csrf) {
			d.fail(w, r, s, http.StatusForbidden, "The form's security token is missing or stale: reload the page and try again.")
			return
		}
		h(w, r.WithContext(withRequestID(r, w)), s)
	}
}

// readForm is the prologue of every POSTed form, signed in or not: it
// refuses a form another site posted, bounds the body, and parses it. When
// it returns false it has answered the request.
func (d *Dashboard) readForm(w http.ResponseWriter, r *http.Request) bool {
	if !sameOrigin(r) {
		d.fail(w, r, nil, http.StatusForbidden, "A form of another site was refused.")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		d.fail(w, r, nil, http.StatusBadRequest, "The form could not be read.")
		return false
	}
	return true
}

// sameOrigin refuses requests that browsers mark as coming from another
// site. It is a second line behind the CSRF token and SameSite=Strict.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

func (d *Dashboard) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		// Secure when the browser reached us over TLS; a plain-HTTP
		// development setup still signs in.
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
}

type signinView struct {
	Token  string
	Fields []int
	Next   string
	Error  string
	Notice string
}

func (d *Dashboard) signinForm(w http.ResponseWriter, r *http.Request) {
	d.renderSignin(w, r, http.StatusOK, "", noticeOf(r.URL.Query().Get("notice")))
}

func noticeOf(code string) string {
	switch code {
	case "signedout":
		return "You are signed out; the keys are gone from the server."
	}
	return ""
}

func (d *Dashboard) renderSignin(w http.ResponseWriter, r *http.Request, status int, msg, notice string) {
	token, err := randomToken()
	if err != nil {
		d.fail(w, r, nil, http.StatusInternalServerError, "No randomness available.")
		return
	}
	d.setCookie(w, r, signinCookie, token, 3600)
	v := signinView{Token: token, Next: safeNext(r.FormValue("next")), Error: msg, Notice: notice}
	for i := range d.opts.KeyFields {
		v.Fields = append(v.Fields, i+1)
	}
	d.render(w, r, nil, status, "signin", "Sign in", v)
}

// safeNext keeps a post-sign-in redirect on the dashboard: a path (no
// scheme, no host) that is still under /ui/ once dot segments, encoded or
// not, are resolved as a browser resolves them.
func safeNext(next string) string {
	const home = "/ui/"
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return home
	}
	p := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") {
		p += "/"
	}
	if !strings.HasPrefix(p, home) {
		return home
	}
	return (&url.URL{Path: p, RawQuery: u.RawQuery}).String()
}

func (d *Dashboard) signin(w http.ResponseWriter, r *http.Request) {
	if !d.readForm(w, r) {
		return
	}
	c, err := r.Cookie(signinCookie)
	if err != nil || !sameToken(r.PostForm.Get("signin"), c.Value) {
		d.renderSignin(w, r, http.StatusForbidden, "The sign-in form expired or came from elsewhere: try again.", "")
		return
	}
	var tokens []string
	for _, k := range r.PostForm["key"] {
		if k = strings.TrimSpace(k); k != "" {
			tokens = append(tokens, k)
		}
	}
	if len(tokens) == 0 {
		d.renderSignin(w, r, http.StatusBadRequest, "Give at least one API key.", "")
		return
	}
	if len(tokens) > d.opts.KeyFields {
		d.renderSignin(w, r, http.StatusBadRequest, fmt.Sprintf("Give at most %d keys, one per environment.", d.opts.KeyFields), "")
		return
	}
	ctx := withRequestID(r, w)
	s := &session{}
	for i, token := range tokens {
		who, err := d.client(token).Whoami(ctx)
		if err != nil {
			var ae *client.APIError
			if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
				// Never echo a key back: name its field.
				d.renderSignin(w, r, http.StatusUnauthorized, fmt.Sprintf("Key %d was not accepted: it is invalid, expired or revoked.", i+1), "")
				return
			}
			d.opts.Logger.Error("dashboard sign-in: whoami failed", "err", err)
			d.renderSignin(w, r, http.StatusBadGateway, fmt.Sprintf("Key %d could not be checked: the API answered with an error.", i+1), "")
			return
		}
		if s.holds(who.Environment) {
			d.renderSignin(w, r, http.StatusBadRequest, fmt.Sprintf("Two keys for %s: give one key per environment.", who.Environment), "")
			return
		}
		s.keys = append(s.keys, envKey{Env: who.Environment, Role: who.Role, Actor: who.Actor, KeyID: who.CredentialID, token: token})
	}
	var envs api.EnvironmentList
	if err := d.getJSON(ctx, tokens[0], "/v1/environments", &envs); err != nil {
		d.opts.Logger.Error("dashboard sign-in: listing environments failed", "err", err)
		d.renderSignin(w, r, http.StatusBadGateway, "The environments could not be listed.", "")
		return
	}
	for _, e := range envs.Environments {
		s.order = append(s.order, e.Name)
	}
	for i := range s.keys {
		s.keys[i].Position = slices.Index(s.order, s.keys[i].Env)
	}
	slices.SortFunc(s.keys, func(a, b envKey) int { return a.Position - b.Position })
	id, err := d.sessions.create(s)
	if err != nil {
		d.renderSignin(w, r, http.StatusServiceUnavailable, "Too many people are signed in: try again later.", "")
		return
	}
	d.setCookie(w, r, signinCookie, "", -1)
	d.setCookie(w, r, sessionCookie, id, 0)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// signout ends the session. A session that already ended only has its
// cookie cleared; a live one needs the form's CSRF token, so that another
// site cannot sign a person out.
func (d *Dashboard) signout(w http.ResponseWriter, r *http.Request) {
	if !d.readForm(w, r) {
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s, ok := d.sessions.get(c.Value); ok {
			if !sameToken(r.PostForm.Get("csrf"), s.csrf) {
				d.fail(w, r, s, http.StatusForbidden, "The form's security token is missing or stale: reload the page and try again.")
				return
			}
			d.sessions.end(c.Value)
		}
	}
	d.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/signin?notice=signedout", http.StatusSeeOther)
}

// getJSON GETs an API path with key for a route the client package does
// not wrap.
func (d *Dashboard) getJSON(ctx context.Context, key, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiBase+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := d.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
