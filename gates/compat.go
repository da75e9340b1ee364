package gates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// CompatMode is a Confluent-style compatibility mode for schema artifacts.
type CompatMode string

// Compatibility modes. BACKWARD: consumers using the new schema can read
// data written with the current one. FORWARD: consumers still on the
// current schema can read data written with the new one. FULL: both.
const (
	CompatBackward CompatMode = "BACKWARD"
	CompatForward  CompatMode = "FORWARD"
	CompatFull     CompatMode = "FULL"
	CompatNone     CompatMode = "NONE"
)

// schemaCompat compares each JSON Schema file of a schema artifact with the
// file at the same path in the target environment's current release.
type schemaCompat struct {
	mode     CompatMode
	maxBytes int64
}

type compatParams struct {
	Mode         string `yaml:"mode"`
	MaxFileBytes int64  `yaml:"max_file_bytes"`
}

func newSchemaCompatCheck(n *yaml.Node) (Check, error) {
	p := compatParams{Mode: string(CompatBackward), MaxFileBytes: 4 << 20}
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	mode := CompatMode(strings.ToUpper(p.Mode))
	switch mode {
	case CompatBackward, CompatForward, CompatFull, CompatNone:
	default:
		return nil, errAt(n, "mode %q: want BACKWARD, FORWARD, FULL or NONE", truncate(p.Mode, 40))
	}
	if p.MaxFileBytes <= 0 {
		return nil, errAt(n, "max_file_bytes must be positive")
	}
	return schemaCompat{mode: mode, maxBytes: p.MaxFileBytes}, nil
}

func (schemaCompat) Name() string { return "schema-compat" }

// BreakingChange is one incompatibility between the current and the new
// schema.
type BreakingChange struct {
	File      string `json:"file"`
	Location  string `json:"location"`  // JSON pointer into the schema instance space
	Change    string `json:"change"`    // stable code, e.g. "required_added"
	Direction string `json:"direction"` // BACKWARD or FORWARD: which guarantee it breaks
	Message   string `json:"message"`
}

// CompatDetails lists compared files and breaking changes.
type CompatDetails struct {
	Mode     CompatMode       `json:"mode"`
	Against  string           `json:"against,omitempty"` // current release version
	Compared []string         `json:"compared"`
	Breaking []BreakingChange `json:"breaking,omitempty"`
}

func (c schemaCompat) Run(ctx context.Context, s *Subject) Result {
	d := CompatDetails{Mode: c.mode, Compared: []string{}}
	if c.mode == CompatNone {
		return pass(d, "compatibility mode NONE")
	}
	if s.Current == nil {
		return pass(d, "no current release in %s to be compatible with", s.Target)
	}
	d.Against = s.Current.Version
	newFiles := map[string]File{}
	for _, f := range s.Files {
		newFiles[f.Path] = f
	}
	for _, old := range s.Current.Files {
		if !configFile(old.Path) {
			continue
		}
		nf, ok := newFiles[old.Path]
		if !ok {
			d.Breaking = append(d.Breaking, BreakingChange{File: old.Path, Change: "schema_removed",
				Direction: string(c.mode), Message: "schema file removed"})
			continue
		}
		oldDoc, err := c.load(ctx, old)
		if err != nil {
			return errored(d, "current %s %s: %v", s.Current.Version, old.Path, err)
		}
		newDoc, err := c.load(ctx, nf)
		var de *docError
		if errors.As(err, &de) {
			d.Breaking = append(d.Breaking, BreakingChange{File: nf.Path, Change: "unreadable", Direction: string(c.mode), Message: de.msg})
			continue
		}
		if err != nil {
			return errored(d, "%s: %v", nf.Path, err)
		}
		d.Compared = append(d.Compared, old.Path)
		d.Breaking = append(d.Breaking, compareSchemas(old.Path, oldDoc, newDoc, c.mode)...)
	}
	if len(d.Breaking) > 0 {
		b := d.Breaking[0]
		return fail(d, "%d breaking change(s) vs %s (%s), first %s%s: %s", len(d.Breaking), d.Against, c.mode, b.File, locSuffix(b.Location), b.Message)
	}
	return pass(d, "%d schema(s) %s-compatible with %s", len(d.Compared), c.mode, d.Against)
}

func (c schemaCompat) load(ctx context.Context, f File) (any, error) {
	b, err := readLimited(ctx, f.Open, c.maxBytes)
	if err != nil {
		return nil, err
	}
	doc, err := parseDocument(f.Path, b)
	if err != nil {
		return nil, err
	}
	return normalizeNumbers(doc), nil
}

// normalizeNumbers turns json.Number into float64 so bounds compare.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = normalizeNumbers(e)
		}
	}
	return v
}

// compareSchemas reports the breaking changes between the current (old)
// and new schema under mode. BACKWARD breaks when new accepts less than
// old; FORWARD when old accepts less than new.
func compareSchemas(file string, oldDoc, newDoc any, mode CompatMode) []BreakingChange {
	var out []BreakingChange
	if mode == CompatBackward || mode == CompatFull {
		w := narrowWalker{file: file, dir: CompatBackward, rootA: oldDoc, rootB: newDoc}
		w.walk(oldDoc, newDoc, "", 0)
		out = append(out, w.out...)
	}
	if mode == CompatForward || mode == CompatFull {
		w := narrowWalker{file: file, dir: CompatForward, rootA: newDoc, rootB: oldDoc}
		w.walk(newDoc, oldDoc, "", 0)
		out = append(out, w.out...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Location != out[j].Location {
			return out[i].Location < out[j].Location
		}
		return out[i].Change < out[j].Change
	})
	return out
}

// narrowWalker finds where schema B accepts less than schema A. In the
// BACKWARD direction A is the current schema and B the new one; FORWARD
// swaps them, and messages are phrased from current to new either way.
type narrowWalker struct {
	file         string
	dir          CompatMode
	rootA, rootB any
	out          []BreakingChange
}

const maxSchemaDepth = 64

func (w *narrowWalker) add(loc, change, format string, args ...any) {
	w.out = append(w.out, BreakingChange{File: w.file, Location: loc, Change: change, Direction: string(w.dir),
		Message: fmt.Sprintf(format, args...)})
}

// backward reports whether A is the current schema.
func (w *narrowWalker) backward() bool { return w.dir == CompatBackward }

// resolve follows local $refs ("#/$defs/x", "#/definitions/x").
func resolve(root, s any) any {
	for range 16 {
		m, ok := s.(map[string]any)
		if !ok {
			return s
		}
		ref, ok := m["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#/") {
			return s
		}
		var cur any = root
		for _, tok := range strings.Split(ref[2:], "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			cm, ok := cur.(map[string]any)
			if !ok {
				return s
			}
			cur = cm[tok]
		}
		if cur == nil {
			return s
		}
		s = cur
	}
	return s
}

// schemaMap views a schema as a map; true and absent are the empty map
// (accepts anything), false is reported by ok=false.
func schemaMap(s any) (m map[string]any, acceptsNothing bool) {
	switch t := s.(type) {
	case nil:
		return map[string]any{}, false
	case bool:
		return map[string]any{}, !t
	case map[string]any:
		return t, false
	}
	return map[string]any{}, false
}

func (w *narrowWalker) walk(a, b any, loc string, depth int) {
	if depth > maxSchemaDepth {
		return
	}
	a, b = resolve(w.rootA, a), resolve(w.rootB, b)
	am, aNothing := schemaMap(a)
	bm, bNothing := schemaMap(b)
	if aNothing {
		return // A accepts nothing; B cannot accept less
	}
	if bNothing {
		w.add(loc, "false_schema", "value %s no longer accepted at all", w.phrase("is", "was"))
		return
	}
	w.types(am, bm, loc)
	w.enums(am, bm, loc)
	w.bounds(am, bm, loc)
	w.objects(am, bm, loc, depth)
	if ai, bi := am["items"], bm["items"]; bi != nil && !isTrivial(resolve(w.rootB, bi)) {
		w.walk(ai, bi, loc+"/items", depth+1)
	}
	for _, kw := range []string{"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "prefixItems", "patternProperties", "dependentSchemas", "dependentRequired"} {
		if bv, ok := bm[kw]; ok && !reflect.DeepEqual(am[kw], bv) {
			w.add(loc, "composition_changed", "%s changed; compatibility cannot be proven", kw)
		}
	}
}

// phrase picks wording for "what happened from current to new".
func (w *narrowWalker) phrase(backward, forward string) string {
	if w.backward() {
		return backward
	}
	return forward
}

func isTrivial(s any) bool {
	m, nothing := schemaMap(s)
	if nothing {
		return false
	}
	for k := range m {
		switch k {
		case "description", "title", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly":
		default:
			return false
		}
	}
	return true
}

func typeSet(m map[string]any) []string {
	switch t := m["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil // any type
}

func (w *narrowWalker) types(am, bm map[string]any, loc string) {
	at, bt := typeSet(am), typeSet(bm)
	if bt == nil {
		return
	}
	if at == nil {
		w.add(loc, "type_added", "type restricted to %v %s", bt, w.phrase("where any type was allowed", "where the current schema allows any type"))
		return
	}
	var lost []string
	for _, t := range at {
		if slices.Contains(bt, t) || (t == "integer" && slices.Contains(bt, "number")) {
			continue
		}
		lost = append(lost, t)
	}
	if len(lost) > 0 {
		if w.backward() {
			w.add(loc, "type_narrowed", "type narrowed from %v to %v", at, bt)
		} else {
			w.add(loc, "type_widened", "type widened from %v to %v; current readers accept only %v", bt, at, bt)
		}
	}
}

func enumValues(m map[string]any) ([]any, bool) {
	if c, ok := m["const"]; ok {
		return []any{c}, true
	}
	e, ok := m["enum"].([]any)
	return e, ok
}

func (w *narrowWalker) enums(am, bm map[string]any, loc string) {
	be, ok := enumValues(bm)
	if !ok {
		return
	}
	ae, aok := enumValues(am)
	if !aok {
		w.add(loc, "enum_added", "values restricted to an enum %s", w.phrase("where any value was allowed", "where the current schema allows any value"))
		return
	}
	for _, v := range ae {
		if !slices.ContainsFunc(be, func(x any) bool { return reflect.DeepEqual(x, v) }) {
			enc, _ := json.Marshal(v)
			if w.backward() {
				w.add(loc, "enum_value_removed", "enum value %s removed", truncate(string(enc), 60))
			} else {
				w.add(loc, "enum_value_added", "enum value %s added; current readers reject it", truncate(string(enc), 60))
			}
		}
	}
}

// bounds compares numeric, length and count limits and patterns.
func (w *narrowWalker) bounds(am, bm map[string]any, loc string) {
	lower := []string{"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"}
	upper := []string{"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"}
	for _, kw := range lower {
		bv, ok := bm[kw].(float64)
		if !ok {
			continue
		}
		av, aok := am[kw].(float64)
		if !aok || bv > av {
			w.add(loc, "bound_tightened", "%s %s to %v", kw, w.phrase("raised", "lowered from"), w.pickBound(av, aok, bv))
		}
	}
	for _, kw := range upper {
		bv, ok := bm[kw].(float64)
		if !ok {
			continue
		}
		av, aok := am[kw].(float64)
		if !aok || bv < av {
			w.add(loc, "bound_tightened", "%s %s to %v", kw, w.phrase("lowered", "raised from"), w.pickBound(av, aok, bv))
		}
	}
	for _, kw := range []string{"pattern", "format", "multipleOf", "uniqueItems"} {
		bv, ok := bm[kw]
		if ok && !reflect.DeepEqual(am[kw], bv) && !(kw == "uniqueItems" && bv == false) {
			cur, nw := w.ordered(am[kw], bv)
			w.add(loc, kw+"_changed", "%s changed from %v to %v", kw, cur, nw)
		}
	}
}

// pickBound names the new value of a limit in current->new terms.
func (w *narrowWalker) pickBound(av float64, aok bool, bv float64) any {
	if w.backward() {
		return bv
	}
	if !aok {
		return "none"
	}
	return av
}

// ordered returns (current, new) for a pair seen as (A, B).
func (w *narrowWalker) ordered(a, b any) (current, next any) {
	if w.backward() {
		return a, b
	}
	return b, a
}

func requiredSet(m map[string]any) []string {
	var out []string
	if r, ok := m["required"].([]any); ok {
		for _, e := range r {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func (w *narrowWalker) objects(am, bm map[string]any, loc string, depth int) {
	ar, br := requiredSet(am), requiredSet(bm)
	for _, f := range br {
		if !slices.Contains(ar, f) {
			if w.backward() {
				w.add(loc, "required_added", "new required field %q", f)
			} else {
				w.add(loc, "required_removed", "required field %q removed; current readers still require it", f)
			}
		}
	}
	ap, _ := am["properties"].(map[string]any)
	bp, _ := bm["properties"].(map[string]any)
	bAdditional, bHasAdditional := bm["additionalProperties"]
	aAdditional := am["additionalProperties"]
	if bHasAdditional && !reflect.DeepEqual(aAdditional, bAdditional) {
		if _, nothing := schemaMap(bAdditional); nothing {
			w.add(loc, "additional_properties_closed", "additional properties %s", w.phrase("no longer allowed", "allowed, but current readers refuse them"))
		}
	}
	names := make([]string, 0, len(ap)+len(bp))
	for k := range ap {
		names = append(names, k)
	}
	for k := range bp {
		if _, ok := ap[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		av, inA := ap[name]
		bv, inB := bp[name]
		ploc := loc + "/" + name
		switch {
		case inA && inB:
			w.walk(av, bv, ploc, depth+1)
		case inA && !inB:
			// B treats the property as an additional property.
			if bHasAdditional {
				if _, nothing := schemaMap(bAdditional); nothing {
					w.add(ploc, "property_removed", "property %q %s", name, w.phrase("removed from a closed content model", "added, but the current schema does not allow additional properties"))
					continue
				}
				w.walk(av, bAdditional, ploc, depth+1)
			}
		case !inA && inB:
			// A accepted anything here, or its additionalProperties.
			if _, nothing := schemaMap(aAdditional); nothing && aAdditional != nil {
				continue // A never accepted the property
			}
			if _, ok := aAdditional.(map[string]any); ok {
				w.walk(aAdditional, bv, ploc, depth+1)
				continue
			}
			if isTrivial(resolve(w.rootB, bv)) {
				continue
			}
			w.add(ploc, "property_added_to_open_model", "property %q %s", name,
				w.phrase("added to an open content model; existing data may hold it with any value", "removed from an open content model"))
		}
	}
}
