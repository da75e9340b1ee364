package gates

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stagegate/stagegate/registry"
)

// Fuzz targets for every parser in this package that reads untrusted bytes.
// Seeds live both here (f.Add) and in testdata/fuzz/<target>/, where inputs
// the fuzzer once crashed on are kept as regression cases. scripts/fuzz.sh
// runs each target for a while; plain `go test` replays the seeds.

// oneLine reports whether a Result reason or error text keeps to the
// one-line contract: reasons are printed in tables and logs, and a
// newline smuggled in from a document could forge extra lines there.
func oneLine(s string) bool { return s != "" && !strings.ContainsAny(s, "\r\n") }

func FuzzLoadPolicy(f *testing.F) {
	for _, env := range []string{"staging", "prod"} {
		b, _ := DefaultPolicyBytes(env)
		f.Add(b)
	}
	f.Add([]byte("environment: prod\nchecks:\n  - name: freeze-windows\n    params:\n      windows:\n        - {name: w, cron: \"0 18 * * FRI\", duration: 62h, timezone: Europe/Berlin}\n"))
	f.Add([]byte("environment: prod\nchecks:\n  - name: approvals\n    params: {count: 2, max_age: 3d}\n  - name: soak-time\n    params: {min: 24h}\n"))
	f.Add([]byte("environment: x\nchecks: [{name: metric-rules, params: {rules: [{name: a, expr: 'metrics.a > 1'}]}}]\n"))
	f.Add([]byte("environment: x\nchecks: [{name: pickle-scan, kinds: [model], required: false, params: {deny_globals: [a.b]}}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("environment: x\nchecks: [{name: soak-time}]\n---\nenvironment: y\n"))
	names := CheckNames()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := LoadPolicy(b)
		if err != nil {
			// Callers point operators at the line; any other error type
			// would lose it.
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Reason == "" || pe.Line < 0 {
				t.Fatalf("refusal is not a usable *PolicyError: %#v", err)
			}
			return
		}
		if p.Environment == "" || len(p.Checks) == 0 {
			t.Fatalf("accepted an incomplete policy: %+v", p)
		}
		if p.Digest != Digest(b) {
			t.Fatalf("digest %s is not the digest of the policy bytes", p.Digest)
		}
		for _, pc := range p.Checks {
			if pc.Check == nil || !slices.Contains(names, pc.Check.Name()) || pc.Family == "" {
				t.Fatalf("accepted entry with unknown check: %+v", pc)
			}
			for _, k := range pc.Kinds {
				if _, err := registry.ParseKind(string(k)); err != nil {
					t.Fatalf("accepted unknown kind %q", k)
				}
			}
		}
		// Loading is a function of the bytes alone: gate runs are replayed
		// from the recorded policy.
		q, err := LoadPolicy(b)
		if err != nil || q.Environment != p.Environment || len(q.Checks) != len(p.Checks) {
			t.Fatalf("second load disagrees: %+v, %v", q, err)
		}
	})
}

func FuzzParseJUnit(f *testing.F) {
	f.Add([]byte(`<testsuites><testsuite name="a" tests="1"><testcase name="x"><failure/></testcase></testsuite></testsuites>`))
	f.Add([]byte(`<testsuite tests="3" failures="-1"/>`))
	f.Add([]byte(`<testsuite><testsuite><testsuite/></testsuite></testsuite>`))
	f.Add([]byte(`<testsuite name="s"><testcase classname="c" name="t"><error/></testcase><testcase name="k"><skipped/></testcase></testsuite>`))
	f.Add([]byte(`<testsuites tests="2" failures="1"><testsuite name="a" failures="3"/></testsuites>`))
	check := buildCheck(f, "junit", "min_tests: 0")
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseJUnit(b)
		if err != nil {
			if !oneLine(err.Error()) {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if rep.Tests < 0 || rep.Failures < 0 || rep.Errors < 0 || rep.Skipped < 0 {
			t.Fatalf("negative counts accepted: %+v", rep.JUnitCounts)
		}
		if len(rep.Failing) > 20 {
			t.Fatalf("%d failing names kept, at most 20", len(rep.Failing))
		}
		// Every listed failing case was counted: no count may hide it.
		if uint64(rep.Failures)+uint64(rep.Errors) < uint64(len(rep.Failing)) {
			t.Fatalf("%d failing case(s) listed but counts are %+v", len(rep.Failing), rep.JUnitCounts)
		}
		for _, name := range rep.Failing {
			if utf8.RuneCountInString(name) > 201 {
				t.Fatalf("failing name of %d bytes kept", len(name))
			}
		}
		// The check built on the parser passes exactly the reports
		// without failures, and explains itself on one line.
		s := subject(registry.KindModel)
		s.Evidence = []Evidence{memEvidence("junit", b)}
		r := check.Run(context.Background(), s)
		if want := rep.Failures == 0 && rep.Errors == 0; (r.Status == Passed) != want || r.Status == Errored {
			t.Fatalf("status %s for counts %+v: %s", r.Status, rep.JUnitCounts, r.Reason)
		}
		if !oneLine(r.Reason) {
			t.Fatalf("reason %q is not one line", r.Reason)
		}
	})
}

func FuzzSafetensorsHeader(f *testing.F) {
	f.Add(stFile(`{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}`, 24))
	f.Add(stFile(`{"__metadata__":{"a":"b"}}`, 0))
	f.Add(stFile(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, 2))
	f.Add(stFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"BOOL","shape":[1],"data_offsets":[2,3]}}`, 3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{'})
	// The cap keeps memory bounded whatever length is declared.
	const maxHeader = 1 << 20
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseSafetensors(bytes.NewReader(b), int64(len(b)), maxHeader)
		if err != nil {
			// In-memory reads cannot fail, so every refusal must be a
			// header problem (Failed), never a read error (Errored).
			var he *headerError
			if !asHeaderError(err, &he) {
				t.Fatalf("refusal %v is not a header error", err)
			}
			return
		}
		if h == nil {
			t.Fatal("nil header without error")
		}
		if h.headerLen < 2 || h.headerLen > maxHeader || h.headerLen > uint64(len(b)-8) {
			t.Fatalf("accepted header length %d for a %d-byte file", h.headerLen, len(b))
		}
		// Accepted tensors tile the data section exactly, in order.
		var at uint64
		for _, tn := range h.tensors {
			if tn.begin != at || tn.end < tn.begin {
				t.Fatalf("tensor %q at [%d,%d) does not follow byte %d", tn.name, tn.begin, tn.end, at)
			}
			at = tn.end
		}
		if dataLen := uint64(len(b)) - 8 - h.headerLen; at != dataLen {
			t.Fatalf("tensors cover %d of %d data bytes", at, dataLen)
		}
		// So one more byte is data the header does not describe.
		longer := append(b[:len(b):len(b)], 0)
		if _, err := parseSafetensors(bytes.NewReader(longer), int64(len(longer)), maxHeader); err == nil {
			t.Fatal("accepted a file with an undescribed trailing byte")
		}
	})
}

func FuzzPickleScan(f *testing.F) {
	for _, s := range []string{evilProto0, evilInst, evilBuiltinEval, benignProto2, benignTorch, evilExt, evilPy2} {
		f.Add([]byte(s))
	}
	for _, b := range [][]byte{evilStackGlobal, evilMemo, benignProto4, benignGlobal4, evilUnresolved, evilQualname, evilQualEval, evilSub} {
		f.Add(b)
	}
	f.Add([]byte("\x80\x05\x95\xff\xff\xff\xff\xff\xff\xff\x7f\x8e\xff\xff\xff\xff\xff\xff\xff\xff."))
	c := buildCheck(f, "pickle-scan", "").(*pickleScan)
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := scanPickles(bytes.NewReader(b), c)
		// A bytes.Reader never fails; the only error is hitting a limit.
		if err != nil && !errors.Is(err, errPickleLimit) {
			t.Fatalf("unexpected error %v", err)
		}
		if res.pickles > pickleMaxPickles {
			t.Fatalf("walked %d pickles", res.pickles)
		}
		for _, fd := range res.findings {
			if fd.Opcode == "" || fd.Why == "" || fd.Offset < 0 || fd.Offset >= int64(len(b)) {
				t.Fatalf("finding %+v out of a %d-byte stream", fd, len(b))
			}
			// Names are echoed into reports; truncate keeps them short.
			if utf8.RuneCountInString(fd.Global) > 203 {
				t.Fatalf("finding echoes a %d-byte global", len(fd.Global))
			}
		}
		// Findings are never undone by what follows: an evil pickle ahead
		// of any bytes is still caught.
		res2, _ := scanPickles(io.MultiReader(strings.NewReader(evilProto0), bytes.NewReader(b)), c)
		if len(res2.findings) == 0 || res2.findings[0].Global != "os.system" {
			t.Fatalf("bytes after an evil pickle hid it: %+v", res2.findings)
		}
	})
}

// FuzzPickleScanFile drives the whole check, archive sniffing included
// (PyTorch zip and legacy tar), the way a published file reaches it.
func FuzzPickleScanFile(f *testing.F) {
	f.Add([]byte(evilProto0))
	f.Add(torchZip(f, map[string][]byte{"archive/data.pkl": []byte(benignTorch), "archive/constants.pkl": evilStackGlobal}))
	f.Add(torchZip(f, map[string][]byte{"archive/data.pkl": []byte(benignTorch)}))
	f.Add(tarball(f, map[string][]byte{"pickle": []byte(evilInst), "storages": []byte("\x00\x01")}))
	f.Add(framed("\x8c\x02os\x94\x8c\x02id\x94\x93\x94."))
	c := buildCheck(f, "pickle-scan", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		r := c.Run(context.Background(), subject(registry.KindModel, memFile("model.pt", b)))
		if !oneLine(r.Reason) {
			t.Fatalf("reason %q is not one line", r.Reason)
		}
		d, ok := r.Details.(PickleDetails)
		if !ok {
			t.Fatalf("details %T", r.Details)
		}
		switch r.Status {
		case Passed:
			if len(d.Findings) > 0 {
				t.Fatalf("passed with findings %+v", d.Findings)
			}
		case Failed:
			if len(d.Findings) == 0 {
				t.Fatalf("failed without findings: %s", r.Reason)
			}
		case Errored:
			// Only the scanner limits make an in-memory file undecidable.
			if !strings.Contains(r.Reason, errPickleLimit.Error()) {
				t.Fatalf("errored: %s", r.Reason)
			}
		default:
			t.Fatalf("status %s", r.Status)
		}
	})
}

// FuzzMetricsEvidence checks the one reader of metrics documents, at the
// door (ValidateEvidence) and at gate time (metric-rules), against
// encoding/json's own notion of a valid document.
func FuzzMetricsEvidence(f *testing.F) {
	f.Add([]byte(`{"auc": 0.93, "f1": 0.8}`))
	f.Add([]byte(`{"eval": {"auc": 0.93, "ok": true, "note": "x", "none": null}}`))
	f.Add([]byte(`{"auc":0.9} trailing garbage`))
	f.Add([]byte(`{"auc":0.9}{"auc":0.1}`))
	f.Add([]byte(" {\"a\": 1e999}\n"))
	f.Add([]byte(`{"a": [1, {"b": 2}]}`))
	f.Add([]byte(`{"a":1,"a":"x"}`))
	always := fakeProgram{func(map[string]any, map[string]any) (bool, error) { return true, nil }}
	check := &metricRules{evidenceType: "metrics", maxBytes: 1 << 20, rules: []metricRule{{name: "r", expr: "true", prog: always}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		derr := decodeJSONDocument(b, &v)
		// Exactly one JSON value, whitespace around it allowed: the same
		// documents encoding/json itself calls valid.
		if (derr == nil) != json.Valid(b) {
			t.Fatalf("decodeJSONDocument = %v, json.Valid = %v", derr, json.Valid(b))
		}
		verr := ValidateEvidence(registry.EvidenceMetrics, b)
		if verr != nil && !oneLine(verr.Error()) {
			t.Fatalf("error %q is not one line", verr)
		}
		m, err := parseMetrics(b)
		if err != nil {
			if verr == nil {
				t.Fatalf("ValidateEvidence accepted what parseMetrics refuses: %v", err)
			}
			return
		}
		if verr != nil {
			return
		}
		// Accepted metrics round-trip through their JSON encoding.
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseMetrics(out)
		if err != nil || !reflect.DeepEqual(again, m) || ValidateEvidence(registry.EvidenceMetrics, out) != nil {
			t.Fatalf("re-encoded metrics %s do not read back: %v", out, err)
		}
		// What the door accepted, the gate reads (numbers past float64
		// aside, which it refuses by name).
		_, ferr := metricsToFloat("", again)
		r := check.Run(context.Background(), evSubject(string(b)))
		switch {
		case ferr == nil && r.Status != Passed:
			t.Fatalf("gate refused accepted metrics: %s", r.Reason)
		case ferr != nil && (r.Status != Failed || !strings.Contains(r.Reason, "out of range")):
			t.Fatalf("out-of-range number: %s %s", r.Status, r.Reason)
		}
		if !oneLine(r.Reason) {
			t.Fatalf("reason %q is not one line", r.Reason)
		}
	})
}

func FuzzProvenanceEvidence(f *testing.F) {
	f.Add([]byte(`{"repository":"github.com/acme/m","ref":"refs/heads/main","commit":"abc"}`))
	f.Add([]byte(`{"repository":"r","ref":"x","commit":"c"} trailing garbage`))
	f.Add([]byte(`{"repository":"r","ref":" ","commit":"c","extra":[1]}`))
	f.Add([]byte(`{"Repository":"r","REF":"x","commit":"c"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := ValidateEvidence(registry.EvidenceProvenance, b)
		if err != nil {
			if !oneLine(err.Error()) {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid or trailing JSON %q", b)
		}
		var p Provenance
		if err := decodeJSONDocument(b, &p); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(p.Repository) == "" || strings.TrimSpace(p.Ref) == "" || strings.TrimSpace(p.Commit) == "" {
			t.Fatalf("accepted provenance with blank fields: %+v", p)
		}
		// Accepted provenance round-trips through its JSON encoding.
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var again Provenance
		if err := decodeJSONDocument(out, &again); err != nil || again != p || ValidateEvidence(registry.EvidenceProvenance, out) != nil {
			t.Fatalf("re-encoded provenance %s does not read back: %+v, %v", out, again, err)
		}
	})
}

// FuzzParseDocument covers the JSON and YAML reader behind json-schema and
// schema-compat: artifact files are as untrusted as any evidence.
func FuzzParseDocument(f *testing.F) {
	f.Add("agent.yaml", []byte("model: m\nsystem_prompt: p\ntools: [{name: t}]\n"))
	f.Add("agent.json", []byte(`{"model":"m","system_prompt":"p","temperature":0.2}`))
	f.Add("features.yml", []byte("a: &a [1, 2]\nb: *a\nc: {1: x, true: y}\n"))
	f.Add("x.yaml", []byte("a: &a [*a]\n"))
	f.Add("x.yaml", []byte("a: 1\n---\nb: 2\n"))
	f.Add("x.json", []byte(`{"a":1} {"b":2}`))
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		doc, err := parseDocument(name, b)
		if err != nil {
			// A bad file is the artifact's defect (Failed), not a system
			// fault (Errored).
			var de *docError
			if !errors.As(err, &de) || !oneLine(de.msg) {
				t.Fatalf("refusal %#v is not a one-line docError", err)
			}
			return
		}
		// Whatever was accepted, YAML included, is plain JSON data: it
		// encodes and reads back unchanged.
		out, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("accepted %T that has no JSON encoding: %v", doc, err)
		}
		again, err := parseDocument("again.json", out)
		if err != nil || !reflect.DeepEqual(again, doc) {
			t.Fatalf("document does not round-trip through %s: %v", out, err)
		}
	})
}
