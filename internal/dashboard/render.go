package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/stagegate/stagegate/client"
)

type pageTemplate struct{ t *template.Template }

// pageNames are the templates/<name>.html files; each defines "content"
// inside the shared layout.
var pageNames = []string{"signin", "error", "matrix", "artifact", "gaterun", "audit", "approve", "promote", "rollback", "result"}

func parsePages() map[string]*pageTemplate {
	funcs := template.FuncMap{
		"short":  shortDigest,
		"bytes":  humanBytes,
		"when":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"labels": sortedLabels,
	}
	out := map[string]*pageTemplate{}
	for _, name := range pageNames {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets,
			"templates/layout.html", "templates/"+name+".html"))
		out[name] = &pageTemplate{t: t}
	}
	return out
}

// view is what every page template receives.
type view struct {
	Title string
	// Keys are the signed-in person's environments (tokens are not
	// exported, so no template can print one); nil when signed out.
	Keys []envKey
	CSRF string
	Page any
}

func (d *Dashboard) render(w http.ResponseWriter, _ *http.Request, s *session, status int, page, title string, data any) {
	v := view{Title: title, Page: data}
	if s != nil {
		v.Keys, v.CSRF = s.keys, s.csrf
	}
	var buf bytes.Buffer
	// Rendered whole before the first byte, so that a template failure is
	// a clean 500, not half a page.
	if err := d.pages[page].t.Execute(&buf, v); err != nil {
		d.opts.Logger.Error("dashboard: rendering failed", "page", page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorView struct {
	Status  int
	Message string
	Code    string // the API's error code, when the API refused
	Detail  string // the API's message
}

func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	d.render(w, r, s, status, "error", http.StatusText(status), errorView{Status: status, Message: msg})
}

// apiFail shows an API refusal with the API's own status, code and
// message: the dashboard adds no permission logic of its own.
func (d *Dashboard) apiFail(w http.ResponseWriter, r *http.Request, s *session, what string, err error) {
	var ae *client.APIError
	if errors.As(err, &ae) {
		status := ae.Status
		if status >= 500 {
			status = http.StatusBadGateway
		}
		d.render(w, r, s, status, "error", http.StatusText(status),
			errorView{Status: status, Message: what + ": the API refused.", Code: ae.Code, Detail: ae.Message})
		return
	}
	d.opts.Logger.Error("dashboard: API call failed", "what", what, "err", err)
	d.fail(w, r, s, http.StatusBadGateway, what+": the API could not answer.")
}

// apiRefusal is a short line for an API error shown inside a page.
func apiRefusal(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return fmt.Sprintf("%s (HTTP %d): %s", ae.Code, ae.Status, ae.Message)
	}
	return "the API could not answer"
}

func isNotFound(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// shortDigest is the first 12 hex digits of a digest (v1.Hash or string).
func shortDigest(v any) string {
	d := fmt.Sprint(v)
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// age is a coarse "how long ago" for a matrix cell.
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

type label struct{ Key, Value string }

func sortedLabels(m map[string]string) []label {
	out := make([]label, 0, len(m))
	for k, v := range m {
		out = append(out, label{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// prettyJSON indents a check's details for a <pre> block.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}
