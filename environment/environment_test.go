package environment_test

import (
	"strings"
	"testing"

	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/registry"
)

// parts are stand-ins: New only checks that they are present.
type parts struct {
	registry.Blobs
	registry.Metadata
	registry.Signer
	registry.Verifier
}

func spec(name string, withPolicy bool) environment.Spec {
	p := parts{}
	s := environment.Spec{Name: name, Blobs: p, Metadata: p, Signer: p, Verifier: p}
	if withPolicy {
		s.Policy = &gates.Policy{Environment: name}
	}
	return s
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		specs   []environment.Spec
		wantErr string
	}{
		{"none", nil, "at least one"},
		{"unnamed", []environment.Spec{spec("", false)}, "no name"},
		{"twice", []environment.Spec{spec("dev", false), spec("dev", true)}, "twice"},
		{"later environment without policy", []environment.Spec{spec("dev", false), spec("prod", false)}, "no gate policy"},
		{"missing storage", []environment.Spec{{Name: "dev"}}, "lacks"},
		{"ok", []environment.Spec{spec("dev", false), spec("staging", true), spec("prod", true)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := environment.New(tt.specs)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("New = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOrder(t *testing.T) {
	l, err := environment.New([]environment.Spec{spec("dev", false), spec("staging", true), spec("prod", true)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(l.Names(), ","); got != "dev,staging,prod" {
		t.Fatalf("Names = %s", got)
	}
	tests := []struct {
		name, previous string
		first          bool
	}{
		{"dev", "", true},
		{"staging", "dev", false},
		{"prod", "staging", false},
	}
	for i, tt := range tests {
		e, ok := l.Bind(tt.name)
		if !ok || e.Name() != tt.name || e.Position() != i || e.AcceptsPublish() != tt.first {
			t.Fatalf("Bind(%q) = %v %v", tt.name, e, ok)
		}
		prev, ok := e.Previous()
		if ok != !tt.first || (ok && prev.Name() != tt.previous) {
			t.Fatalf("%s.Previous() = %v %v, want %q", tt.name, prev, ok, tt.previous)
		}
	}
	for _, name := range []string{"", "qa", "Prod", "prod "} {
		if _, ok := l.Bind(name); ok {
			t.Fatalf("Bind(%q) found an environment", name)
		}
	}
	if l.First().Name() != "dev" {
		t.Fatal("First is not dev")
	}
}
