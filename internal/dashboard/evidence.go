package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/registry"
)

// maxVersionDetails bounds the versions per environment whose signature
// and evidence an artifact page reads (a few API calls each); older ones
// are listed without them.
const maxVersionDetails = 10

// maxEvidenceEntries bounds the metric or provenance entries a page lists
// per document: the download has them all.
const maxEvidenceEntries = 50

// versionDetail is one version as one environment holds it: its signature
// by that environment's key and its evidence, read from the documents.
type versionDetail struct {
	Version string
	// Signature is the environment key's signature of the manifest (nil:
	// unsigned); Loaded is false when the version record could not be read.
	Signature   *registry.Signature
	Loaded      bool
	Evidence    []evidenceView
	EvidenceErr string
}

// evidenceView is one evidence document and what the page read from it.
type evidenceView struct {
	registry.Evidence
	DownloadURL string
	JUnit       *gates.JUnitReport
	Entries     []label // metrics (flattened keys) or provenance fields
	More        bool    // entries beyond maxEvidenceEntries left out
	ReadErr     string
}

// versionDetails reads the signature and evidence of the newest versions
// of name in env, with the person's key for env.
func versionDetails(ctx context.Context, cl *client.Client, env, name string, vs []registry.VersionRecord) []versionDetail {
	out := make([]versionDetail, 0, min(len(vs), maxVersionDetails))
	for _, v := range vs[:min(len(vs), maxVersionDetails)] {
		vd := versionDetail{Version: v.Version}
		// Signatures come with a single version's record only.
		if rec, err := cl.GetVersion(ctx, env, name, v.Version); err == nil {
			vd.Loaded = true
			if sig, ok := rec.EnvironmentSignature(""); ok {
				vd.Signature = &sig
			}
		}
		docs, err := cl.ListEvidence(ctx, env, name, v.Version)
		if err != nil {
			vd.EvidenceErr = apiRefusal(err)
		}
		for _, doc := range docs {
			vd.Evidence = append(vd.Evidence, readEvidence(ctx, cl, env, doc))
		}
		out = append(out, vd)
	}
	return out
}

// readEvidence fetches one document through the API with the person's
// client (checked against the digest the API names for it, like `evidence
// get`), and reads it with the parsers the gates use.
func readEvidence(ctx context.Context, cl *client.Client, env string, doc registry.Evidence) evidenceView {
	ev := evidenceView{Evidence: doc, DownloadURL: evidenceURL(env, doc)}
	data, _, err := cl.GetEvidence(ctx, env, doc.Name, doc.Version, doc.Type, doc.Digest.String())
	if err != nil {
		ev.ReadErr = "could not be read: " + apiRefusal(err)
		return ev
	}
	switch doc.Type {
	case registry.EvidenceJUnit:
		rep, err := gates.ParseJUnit(data)
		if err != nil {
			ev.ReadErr = err.Error()
			return ev
		}
		ev.JUnit = &rep
	case registry.EvidenceMetrics:
		m, err := gates.ParseMetrics(data)
		if err != nil {
			ev.ReadErr = "not a metrics document"
			return ev
		}
		ev.Entries, ev.More = flatten(m)
	default:
		// Provenance, or a type added later: its fields as they are.
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&m) != nil {
			ev.ReadErr = "not a JSON object"
			return ev
		}
		ev.Entries, ev.More = flatten(m)
	}
	return ev
}

// flatten lists a nested JSON object as dotted keys and values, sorted by
// key, at most maxEvidenceEntries of them.
func flatten(m map[string]any) ([]label, bool) {
	var out []label
	var walk func(prefix string, m map[string]any, depth int)
	walk = func(prefix string, m map[string]any, depth int) {
		for k, v := range m {
			key := prefix + k
			switch v := v.(type) {
			case map[string]any:
				if depth < 16 {
					walk(key+".", v, depth+1)
				}
			case string:
				out = append(out, label{key, v})
			default:
				b, _ := json.Marshal(v)
				out = append(out, label{key, string(b)})
			}
		}
	}
	walk("", m, 0)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	if len(out) > maxEvidenceEntries {
		return out[:maxEvidenceEntries], true
	}
	return out, false
}

func evidencePath(env, name, version, typ, digest string) string {
	p := "/v1/environments/" + url.PathEscape(env) + "/artifacts/" + escapePath(name) + "/-/versions/" +
		url.PathEscape(version) + "/evidence/" + url.PathEscape(typ)
	if digest != "" {
		p += "?digest=" + url.QueryEscape(digest)
	}
	return p
}

// evidenceURL is the dashboard's download link of a document.
func evidenceURL(env string, doc registry.Evidence) string {
	q := url.Values{"name": {doc.Name}, "version": {doc.Version}, "type": {doc.Type}, "digest": {doc.Digest.String()}}
	return "/ui/environments/" + url.PathEscape(env) + "/evidence?" + q.Encode()
}

// safeVersion matches what may appear in a download's file name: a
// version is checked by the API, but the name is written before it answers.
var safeVersion = regexp.MustCompile(`^[0-9A-Za-z.+-]{1,128}$`)

// evidence streams an evidence document from the API as a download. The
// browser has no key: the dashboard sends the session's key for env, so a
// person gets exactly the documents their keys may read. It is always an
// attachment, never shown inline: an XML document rendered by the browser
// could carry markup of its own.
func (d *Dashboard) evidence(w http.ResponseWriter, r *http.Request, s *session) {
	env, q := r.PathValue("env"), r.URL.Query()
	name, err := registry.ParseName(q.Get("name"))
	version, typ := q.Get("version"), q.Get("type")
	if err != nil || !safeVersion.MatchString(version) || !slices.Contains(gates.EvidenceTypes, typ) {
		d.fail(w, r, s, http.StatusBadRequest, "An evidence download needs a name, a version and a known type.")
		return
	}
	digest := q.Get("digest")
	if digest != "" {
		if _, err := registry.ParseDigest(digest); err != nil {
			d.fail(w, r, s, http.StatusBadRequest, "Invalid digest.")
			return
		}
	}
	ext := ".json"
	if typ == registry.EvidenceJUnit {
		ext = ".xml"
	}
	filename := strings.ReplaceAll(name, "/", "_") + "-" + version + "-" + typ + ext
	d.proxy(&attachment{ResponseWriter: w, filename: filename}, r, s, env, evidencePath(env, name, version, typ, digest))
}
