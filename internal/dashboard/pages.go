package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// maxMatrixRows bounds one matrix page (and so the API calls behind it);
// the filters narrow it down.
const maxMatrixRows = 200

type matrixView struct {
	Envs      []string
	Columns   int // of the table: name, kind and one per environment
	Rows      []*matrixRow
	Kinds     []string
	Kind      string
	Name      string
	Truncated bool
	Errors    []string
}

type matrixRow struct {
	Name  string
	Kind  string
	Cells []matrixCell
}

type matrixCell struct {
	Env       string
	Version   string
	Age       string
	At        time.Time
	Published bool   // first environment: the newest published version, not a release
	Differs   bool   // the environment before this one has another version
	DiffNote  string // what that environment has
}

// matrix shows artifacts down and the person's environments across, in
// promotion order, each cell the current release.
func (d *Dashboard) matrix(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	q := r.URL.Query()
	v := matrixView{Kind: q.Get("kind"), Name: strings.TrimSpace(q.Get("name"))}
	for _, k := range registry.Kinds {
		v.Kinds = append(v.Kinds, string(k))
	}
	rows := map[string]*matrixRow{}
	cells := map[string]map[string]matrixCell{} // name → env → cell
	want := func(name string, kind registry.Kind) bool {
		return (v.Kind == "" || string(kind) == v.Kind) &&
			(v.Name == "" || strings.Contains(strings.ToLower(name), strings.ToLower(v.Name)))
	}
	for _, k := range s.keys {
		v.Envs = append(v.Envs, k.Env)
		cl := d.client(k.token)
		arts, err := cl.ListArtifacts(ctx, k.Env)
		if err != nil {
			v.Errors = append(v.Errors, k.Env+": "+apiRefusal(err))
			continue
		}
		var names []string
		for _, a := range arts {
			if !want(a.Name, a.Kind) {
				continue
			}
			if rows[a.Name] == nil {
				if len(rows) >= maxMatrixRows {
					v.Truncated = true
					continue
				}
				rows[a.Name] = &matrixRow{Name: a.Name, Kind: string(a.Kind)}
				cells[a.Name] = map[string]matrixCell{}
			}
			names = append(names, a.Name)
		}
		if k.Position == 0 {
			// The first environment has publishes, not releases: its cell
			// is the newest version.
			for _, name := range names {
				vs, err := cl.ListVersions(ctx, k.Env, name)
				if err != nil || len(vs) == 0 {
					continue
				}
				sortVersions(vs)
				cells[name][k.Env] = matrixCell{Version: vs[0].Version, At: vs[0].CreatedAt, Published: true}
			}
			continue
		}
		st, err := cl.ReleasesAt(ctx, k.Env, time.Time{}, "")
		if err != nil {
			v.Errors = append(v.Errors, k.Env+": "+apiRefusal(err))
			continue
		}
		for _, rel := range st.Releases {
			if _, ok := rows[rel.Name]; ok {
				cells[rel.Name][k.Env] = matrixCell{Version: rel.Version, At: rel.CreatedAt}
			}
		}
	}
	now := d.opts.Now()
	for name, row := range rows {
		var prev matrixCell
		for i, env := range v.Envs {
			c := cells[name][env]
			c.Env = env
			if c.Version != "" {
				c.Age = age(now, c.At)
			}
			if i > 0 && prev.Version != "" && prev.Version != c.Version {
				c.Differs = true
				c.DiffNote = v.Envs[i-1] + " has " + prev.Version
			}
			row.Cells = append(row.Cells, c)
			prev = c
		}
		v.Rows = append(v.Rows, row)
	}
	slices.SortFunc(v.Rows, func(a, b *matrixRow) int { return strings.Compare(a.Name, b.Name) })
	v.Columns = len(v.Envs) + 2
	d.render(w, r, s, http.StatusOK, "matrix", "Environments", v)
}

// sortVersions orders versions highest semver first.
func sortVersions(vs []registry.VersionRecord) {
	slices.SortStableFunc(vs, func(a, b registry.VersionRecord) int {
		va, errA := semver.NewVersion(a.Version)
		vb, errB := semver.NewVersion(b.Version)
		if errA != nil || errB != nil {
			return strings.Compare(b.Version, a.Version)
		}
		return vb.Compare(va)
	})
}

type artifactView struct {
	Name string
	Kind string
	Envs []*artifactEnv
}

type artifactEnv struct {
	Env      string
	Role     string
	Previous string // the environment promotions come from
	Err      string
	Absent   bool

	Versions     []registry.VersionRecord
	Current      *registry.Release
	Timeline     []registry.Release
	MoreTimeline bool
	// Details are the newest versions' signatures by this environment's
	// key and their evidence, in the order of Versions; MoreVersions says
	// older ones were left out.
	Details      []versionDetail
	MoreVersions bool
	// EvidenceChecks are the tests-family checks of the current release's
	// gate run: the JUnit totals and metrics as the gates judged them.
	EvidenceChecks []checkView
	EvidenceRunURL string

	CanApprove, CanPromote, CanRollback bool
	// Candidates are versions of the previous environment that are not
	// current here (empty when the person holds no key for it: the form
	// then asks for a version).
	Candidates []string
}

// artifact shows one name in every environment the person holds a key for.
func (d *Dashboard) artifact(w http.ResponseWriter, r *http.Request, s *session) {
	name, err := registry.ParseName(r.PathValue("name"))
	if err != nil {
		d.fail(w, r, s, http.StatusNotFound, "No such artifact name.")
		return
	}
	ctx := r.Context()
	v := artifactView{Name: name}
	versionsOf := map[string][]registry.VersionRecord{}
	for _, k := range s.keys {
		e := &artifactEnv{Env: k.Env, Role: k.Role, Previous: s.previous(k.Env)}
		v.Envs = append(v.Envs, e)
		role := auth.Role(k.Role)
		cl := d.client(k.token)
		vs, err := cl.ListVersions(ctx, k.Env, name)
		switch {
		case isNotFound(err):
			e.Absent = true
		case err != nil:
			e.Err = apiRefusal(err)
			continue
		case len(vs) == 0:
			e.Absent = true
		default:
			sortVersions(vs)
			e.Versions = vs
			versionsOf[k.Env] = vs
			if v.Kind == "" && len(vs) > 0 {
				v.Kind = string(vs[0].Kind)
			}
		}
		if e.Previous != "" {
			hist, err := cl.History(ctx, k.Env, name, 50, 0)
			if err != nil && !isNotFound(err) {
				e.Err = apiRefusal(err)
			}
			e.Timeline, e.MoreTimeline = hist.Releases, hist.NextBefore > 0
			if len(e.Timeline) > 0 {
				cur := e.Timeline[0]
				e.Current = &cur
			}
			e.CanApprove = role.Allows(auth.PermApprove)
			e.CanPromote = role.Allows(auth.PermPromote)
			e.CanRollback = role.Allows(auth.PermRollback) && len(e.Timeline) > 1
			for _, pv := range versionsOf[e.Previous] {
				if e.Current == nil || pv.Version != e.Current.Version {
					e.Candidates = append(e.Candidates, pv.Version)
				}
			}
		}
		if len(e.Versions) > 0 {
			e.Details = versionDetails(ctx, cl, k.Env, name, e.Versions)
			e.MoreVersions = len(e.Versions) > len(e.Details)
		}
		if e.Current != nil && e.Current.GateRunID != "" {
			// What the tests family of checks read from the evidence (JUnit
			// totals, metric rules) when the current release passed its gates.
			if run, err := cl.GateRun(ctx, k.Env, e.Current.GateRunID); err == nil {
				var rep api.GateReport
				if json.Unmarshal(run.Report, &rep) == nil {
					var tests []api.CheckResult
					for _, c := range rep.Results {
						if c.Family == "tests" && c.Status != "skipped" {
							tests = append(tests, c)
						}
					}
					e.EvidenceChecks = checkViews(tests)
					e.EvidenceRunURL = gateRunURL(k.Env, run.ID)
				}
			}
		}
	}
	d.render(w, r, s, http.StatusOK, "artifact", name, v)
}

type checkView struct {
	api.CheckResult
	Word    string // the status in words: colour is never the only signal
	Details string
}

type gateRunView struct {
	Env            string
	Run            registry.GateRun
	Report         api.GateReport
	Checks         []checkView
	Kind           string
	AttestationURL string
	Duration       time.Duration
}

func checkViews(results []api.CheckResult) []checkView {
	out := make([]checkView, 0, len(results))
	for _, c := range results {
		word := c.Status
		switch c.Status {
		case "passed", "failed", "errored", "skipped":
		default:
			word = "unknown (" + c.Status + ")"
		}
		out = append(out, checkView{CheckResult: c, Word: word, Details: prettyJSON(c.Details)})
	}
	return out
}

// gateRun shows one stored gate run: every check, the policy digest, and
// the attestation of a run that released something.
func (d *Dashboard) gateRun(w http.ResponseWriter, r *http.Request, s *session) {
	env, id := r.PathValue("env"), r.PathValue("id")
	k, _ := s.key(env)
	run, err := d.client(k.token).GateRun(r.Context(), env, id)
	if err != nil {
		d.apiFail(w, r, s, "Reading gate run "+id, err)
		return
	}
	v := gateRunView{Env: env, Run: run, Duration: time.Duration(run.DurationMS) * time.Millisecond}
	if len(run.Report) > 0 {
		if err := json.Unmarshal(run.Report, &v.Report); err != nil {
			d.fail(w, r, s, http.StatusBadGateway, "The gate run's report could not be read.")
			return
		}
	}
	v.Checks = checkViews(v.Report.Results)
	switch {
	case run.DryRun:
		v.Kind = "dry run (nothing released)"
	case run.Source == run.Environment:
		v.Kind = "rollback"
	default:
		v.Kind = "promotion from " + run.Source
	}
	if run.Passed && !run.DryRun {
		q := url.Values{"name": {run.Name}, "version": {run.Version}}
		if run.Source == run.Environment {
			q.Set("gateRun", run.ID)
		}
		v.AttestationURL = "/ui/environments/" + url.PathEscape(env) + "/attestation?" + q.Encode()
	}
	d.render(w, r, s, http.StatusOK, "gaterun", "Gate run "+id, v)
}

// attestation streams the signed in-toto statement of a release from the
// API, as a download.
func (d *Dashboard) attestation(w http.ResponseWriter, r *http.Request, s *session) {
	env, q := r.PathValue("env"), r.URL.Query()
	name, err := registry.ParseName(q.Get("name"))
	if err != nil || q.Get("version") == "" {
		d.fail(w, r, s, http.StatusBadRequest, "An attestation needs a name and a version.")
		return
	}
	path := "/v1/environments/" + url.PathEscape(env) + "/artifacts/" + escapePath(name) + "/-/versions/" +
		url.PathEscape(q.Get("version")) + "/attestation"
	if run := q.Get("gateRun"); run != "" {
		path += "?gateRun=" + url.QueryEscape(run)
	}
	d.proxy(&attachment{ResponseWriter: w, filename: "attestation.intoto.json"}, r, s, env, path)
}

// proxy serves an API GET straight into the browser's response, with the
// person's key for env: downloads stream without buffering.
func (d *Dashboard) proxy(w http.ResponseWriter, r *http.Request, s *session, env, path string) {
	k, _ := s.key(env)
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, apiBase+path, nil)
	if err != nil {
		d.fail(w, r, s, http.StatusBadRequest, "Bad request.")
		return
	}
	req.Header.Set("Authorization", "Bearer "+k.token)
	req.RemoteAddr = r.RemoteAddr
	d.opts.API.ServeHTTP(w, req)
}

// attachment marks a successful answer as a download; a refusal stays the
// API's JSON error, shown in the browser.
type attachment struct {
	http.ResponseWriter
	filename string
	wrote    bool
}

func (a *attachment) WriteHeader(code int) {
	if !a.wrote {
		a.wrote = true
		if code == http.StatusOK {
			a.Header().Set("Content-Disposition", `attachment; filename="`+a.filename+`"`)
		}
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *attachment) Write(p []byte) (int, error) {
	if !a.wrote {
		a.WriteHeader(http.StatusOK)
	}
	return a.ResponseWriter.Write(p)
}

// Flush lets the API's export stream in batches.
func (a *attachment) Flush() {
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (a *attachment) Unwrap() http.ResponseWriter { return a.ResponseWriter }

func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// auditFilters are the API's audit filters, passed through as they are.
var auditFilters = []string{"action", "actor", "outcome", "name", "version", "target", "requestId", "since", "until"}

const auditPageSize = 50

type auditView struct {
	Env       string
	Envs      []string
	Filters   map[string]string
	Events    []auditEventView
	NextURL   string
	ExportURL string
	Err       string
}

type auditEventView struct {
	ID                                   int64
	Time                                 time.Time
	Actor, Action, Target, Outcome, Code string
	RequestID                            string
	Details                              []label
	// GateRunURL is the gate run the event names (a promotion, a rollback,
	// or one refused by its gates).
	GateRunURL string
}

// audit shows an environment's audit trail, newest first, a page at a time.
func (d *Dashboard) audit(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	v := auditView{Env: q.Get("env"), Filters: map[string]string{}}
	for _, k := range s.keys {
		v.Envs = append(v.Envs, k.Env)
	}
	if v.Env == "" {
		v.Env = s.keys[len(s.keys)-1].Env
	}
	apiQ := url.Values{}
	for _, f := range auditFilters {
		if val := strings.TrimSpace(q.Get(f)); val != "" {
			v.Filters[f] = val
			apiQ.Set(f, val)
		}
	}
	export := url.Values{"env": {v.Env}}
	for f, val := range v.Filters {
		export.Set(f, val)
	}
	v.ExportURL = "/ui/audit/export?" + export.Encode()
	apiQ.Set("limit", strconv.Itoa(auditPageSize))
	if b := q.Get("before"); b != "" {
		apiQ.Set("before", b)
	}
	k, _ := s.key(v.Env)
	page, err := d.client(k.token).AuditPage(r.Context(), v.Env, apiQ)
	if err != nil {
		v.Err = apiRefusal(err)
		d.render(w, r, s, statusOf(err), "audit", "Audit", v)
		return
	}
	for _, ev := range page.Events {
		v.Events = append(v.Events, auditEventView{ID: ev.ID, Time: ev.Time, Actor: ev.Actor, Action: ev.Action,
			Target: ev.Target, Outcome: string(ev.Outcome), Code: ev.ErrorCode, RequestID: ev.RequestID, Details: sortedLabels(ev.Details),
			GateRunURL: gateRunURL(v.Env, ev.Details["gateRunId"])})
	}
	if page.Next != "" {
		next := url.Values{"env": {v.Env}, "before": {page.Next}}
		for f, val := range v.Filters {
			next.Set(f, val)
		}
		v.NextURL = "/ui/audit?" + next.Encode()
	}
	d.render(w, r, s, http.StatusOK, "audit", "Audit", v)
}

// statusOf is the status a page answers with when the API refused its
// main read.
func statusOf(err error) int {
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status < 500 {
		return ae.Status
	}
	return http.StatusBadGateway
}

// auditExport streams the API's JSON Lines export of the filtered trail.
func (d *Dashboard) auditExport(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	env := q.Get("env")
	if env == "" {
		d.fail(w, r, s, http.StatusBadRequest, "Choose an environment to export.")
		return
	}
	apiQ := url.Values{}
	for _, f := range auditFilters {
		if val := q.Get(f); val != "" {
			apiQ.Set(f, val)
		}
	}
	path := "/v1/environments/" + url.PathEscape(env) + "/audit/export"
	if len(apiQ) > 0 {
		path += "?" + apiQ.Encode()
	}
	d.proxy(&attachment{ResponseWriter: w, filename: "audit-" + url.PathEscape(env) + ".jsonl"}, r, s, env, path)
}
