package gates

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagegate/stagegate/registry"
)

func compatSubject(t *testing.T, newFixture string) *Subject {
	old := memFile("payment.schema.json", readFixture(t, filepath.Join("testdata", "compat", "base.json")))
	nw := memFile("payment.schema.json", readFixture(t, filepath.Join("testdata", "compat", newFixture+".json")))
	s := subject(registry.KindSchema, nw)
	s.Current = &Release{Version: "1.3.0", Files: []File{old}}
	return s
}

// TestSchemaCompat compares testdata/compat/base.json (the current release)
// with each changed schema, in both directions.
func TestSchemaCompat(t *testing.T) {
	tests := []struct {
		fixture  string
		backward []string // change codes BACKWARD reports
		forward  []string // change codes FORWARD reports
	}{
		{"base", nil, nil},
		{"doc-only", nil, nil},
		{"optional-removed", nil, []string{"property_added_to_open_model"}},
		{"required-added", []string{"required_added"}, nil},
		{"required-removed", nil, []string{"required_removed"}},
		{"type-narrowed", []string{"type_narrowed"}, nil},
		{"type-widened", nil, []string{"type_widened"}},
		{"enum-removed", []string{"enum_value_removed"}, nil},
		{"enum-added", nil, []string{"enum_value_added"}},
		{"max-length-lowered", []string{"bound_tightened"}, nil},
		{"nested-ref-narrowed", []string{"bound_tightened"}, nil},
		{"closed", []string{"additional_properties_closed"}, nil},
		{"optional-added-typed", []string{"property_added_to_open_model"}, nil},
	}
	modes := map[CompatMode]Check{}
	for _, m := range []CompatMode{CompatBackward, CompatForward, CompatFull, CompatNone} {
		modes[m] = buildCheck(t, "schema-compat", "mode: "+string(m))
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			for mode, want := range map[CompatMode][]string{
				CompatBackward: tt.backward,
				CompatForward:  tt.forward,
				CompatFull:     append(append([]string{}, tt.backward...), tt.forward...),
				CompatNone:     nil,
			} {
				if len(want) == 0 {
					want = nil
				}
				r := modes[mode].Run(context.Background(), compatSubject(t, tt.fixture))
				var got []string
				for _, b := range r.Details.(CompatDetails).Breaking {
					got = append(got, b.Change)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s changes (-want +got):\n%s\n%s", mode, diff, r.Reason)
				}
				if want == nil {
					wantStatus(t, r, Passed)
				} else {
					wantStatus(t, r, Failed)
				}
			}
		})
	}
}

func TestSchemaCompatMessages(t *testing.T) {
	c := buildCheck(t, "schema-compat", "mode: FULL")
	r := c.Run(context.Background(), compatSubject(t, "required-removed"))
	b := r.Details.(CompatDetails).Breaking[0]
	want := BreakingChange{File: "payment.schema.json", Location: "", Change: "required_removed", Direction: "FORWARD",
		Message: `required field "amount" removed; current readers still require it`}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	r = c.Run(context.Background(), compatSubject(t, "nested-ref-narrowed"))
	if got := r.Details.(CompatDetails).Breaking[0].Location; got != "/items/items/qty" {
		t.Errorf("location %q", got)
	}
}

func TestSchemaCompatEdges(t *testing.T) {
	c := buildCheck(t, "schema-compat", "")
	s := compatSubject(t, "base")
	s.Current = nil
	wantStatus(t, c.Run(context.Background(), s), Passed)

	s = compatSubject(t, "base")
	s.Files[0].Path = "renamed.json"
	r := c.Run(context.Background(), s)
	wantStatus(t, r, Failed)
	if r.Details.(CompatDetails).Breaking[0].Change != "schema_removed" {
		t.Errorf("%+v", r.Details)
	}

	s = compatSubject(t, "base")
	s.Current.Files[0].Open = failingOpener
	wantStatus(t, c.Run(context.Background(), s), Errored)

	s = compatSubject(t, "base")
	s.Files[0] = memFile("payment.schema.json", []byte("{not json"))
	wantStatus(t, c.Run(context.Background(), s), Failed)
}
