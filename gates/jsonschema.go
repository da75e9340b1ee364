package gates

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/schemas"
)

// jsonSchemaCheck validates agent-config and features files (JSON or YAML)
// against the embedded schemas, compiled once when the policy loads.
type jsonSchemaCheck struct {
	byKind   map[registry.Kind]*jsonschema.Schema
	maxBytes int64
}

type jsonSchemaParams struct {
	MaxFileBytes int64 `yaml:"max_file_bytes"`
}

func newJSONSchemaCheck(n *yaml.Node) (Check, error) {
	p := jsonSchemaParams{MaxFileBytes: 4 << 20}
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if p.MaxFileBytes <= 0 {
		return nil, errAt(n, "max_file_bytes must be positive")
	}
	c := &jsonSchemaCheck{byKind: map[registry.Kind]*jsonschema.Schema{}, maxBytes: p.MaxFileBytes}
	for kind, name := range map[registry.Kind]string{registry.KindAgentConfig: schemas.AgentConfig, registry.KindFeatures: schemas.Features} {
		sch, err := compileEmbedded(name)
		if err != nil {
			return nil, fmt.Errorf("embedded schema %s: %w", name, err)
		}
		c.byKind[kind] = sch
	}
	return c, nil
}

func compileEmbedded(name string) (*jsonschema.Schema, error) {
	b, err := schemas.JSONSchema(name)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	id := schemas.SchemaID(name)
	if err := c.AddResource(id, doc); err != nil {
		return nil, err
	}
	return c.Compile(id)
}

func (*jsonSchemaCheck) Name() string { return "json-schema" }

// SchemaViolation is one reason a document does not match its schema.
type SchemaViolation struct {
	Path     string `json:"path"`     // file
	Location string `json:"location"` // JSON pointer inside the document
	Message  string `json:"message"`
}

// JSONSchemaDetails lists validated files and every violation.
type JSONSchemaDetails struct {
	Schema     string            `json:"schema"`
	Validated  []string          `json:"validated"`
	Violations []SchemaViolation `json:"violations,omitempty"`
}

// configFile reports whether p is a JSON or YAML document.
func configFile(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

func (c *jsonSchemaCheck) Run(ctx context.Context, s *Subject) Result {
	sch, ok := c.byKind[s.Kind]
	if !ok {
		return skip("no JSON Schema for kind %s", s.Kind)
	}
	d := JSONSchemaDetails{Schema: sch.Location, Validated: []string{}}
	for _, f := range s.Files {
		if !configFile(f.Path) {
			continue
		}
		doc, err := readDocument(ctx, f, c.maxBytes)
		var de *docError
		switch {
		case errors.As(err, &de):
			d.Violations = append(d.Violations, SchemaViolation{Path: f.Path, Message: de.msg})
			continue
		case err != nil:
			return errored(d, "%s: %v", f.Path, err)
		}
		d.Validated = append(d.Validated, f.Path)
		if err := sch.Validate(doc); err != nil {
			var ve *jsonschema.ValidationError
			if !errors.As(err, &ve) {
				return errored(d, "%s: validate: %v", f.Path, err)
			}
			d.Violations = append(d.Violations, flattenViolations(f.Path, ve)...)
		}
	}
	if len(d.Violations) > 0 {
		v := d.Violations[0]
		return fail(d, "%d schema violation(s), first %s%s: %s", len(d.Violations), v.Path, locSuffix(v.Location), v.Message)
	}
	if len(d.Validated) == 0 {
		return fail(d, "no JSON or YAML file to validate for kind %s", s.Kind)
	}
	return pass(d, "%d file(s) valid against %s", len(d.Validated), strings.TrimSuffix(path.Base(sch.Location), "#"))
}

func locSuffix(loc string) string {
	if loc == "" {
		return ""
	}
	return " at " + loc
}

// flattenViolations turns the error tree into its leaves, sorted by location.
func flattenViolations(file string, ve *jsonschema.ValidationError) []SchemaViolation {
	p := message.NewPrinter(language.English)
	var out []SchemaViolation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := ""
			if len(e.InstanceLocation) > 0 {
				loc = "/" + strings.Join(e.InstanceLocation, "/")
			}
			out = append(out, SchemaViolation{Path: file, Location: loc, Message: truncate(e.ErrorKind.LocalizedString(p), 300)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Location < out[j].Location })
	return out
}

// docError is a defect of the document itself (Failed, not Errored).
type docError struct{ msg string }

func (e *docError) Error() string { return e.msg }

// readDocument reads a JSON or YAML file (by extension) of at most max
// bytes into JSON-compatible values.
func readDocument(ctx context.Context, f File, max int64) (any, error) {
	b, err := readLimited(ctx, f.Open, max)
	if err != nil {
		return nil, err
	}
	return parseDocument(f.Path, b)
}

// readLimited reads a whole blob, refusing (as a docError) one over max.
func readLimited(ctx context.Context, open Opener, max int64) ([]byte, error) {
	if open == nil {
		return nil, fmt.Errorf("no opener")
	}
	rc, err := open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(ctxReader{ctx, io.LimitReader(rc, max+1)})
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if int64(len(b)) > max {
		return nil, &docError{msg: fmt.Sprintf("larger than the %d-byte limit", max)}
	}
	return b, nil
}

func parseDocument(name string, b []byte) (any, error) {
	ext := strings.ToLower(path.Ext(name))
	if ext == ".json" {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, &docError{msg: "not valid JSON: " + truncate(foldLines(err.Error()), 200)}
		}
		return doc, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &docError{msg: "empty YAML document"}
		}
		return nil, &docError{msg: "not valid YAML: " + truncate(foldLines(strings.TrimPrefix(err.Error(), "yaml: ")), 200)}
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &docError{msg: "more than one YAML document"}
	}
	return jsonCompatible(v)
}

// jsonCompatible converts decoded YAML into the values JSON decoding would
// produce (string-keyed maps, json.Number), so YAML and JSON files
// validate identically.
func jsonCompatible(v any) (any, error) {
	b, err := json.Marshal(normalizeYAML(v))
	if err != nil {
		return nil, &docError{msg: "YAML value has no JSON equivalent: " + truncate(foldLines(err.Error()), 120)}
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

func normalizeYAML(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeYAML(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = normalizeYAML(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = normalizeYAML(e)
		}
		return t
	}
	return v
}
