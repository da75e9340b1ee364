package httpapi

import (
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	tests := []struct {
		in   string
		keep bool
	}{
		{"ci-run-42.step_7", true},
		{"0123456789abcdef", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"", false},
		{"two words", false},
		{"tab\there", false},
		{"a=b", false},
		{`quo"te`, false},
		{"é", false},
		{"line\nbreak", false},
	}
	for _, tt := range tests {
		got := requestID(tt.in)
		if (got == tt.in) != tt.keep {
			t.Errorf("requestID(%q) = %q, keep %v", tt.in, got, tt.keep)
		}
		if !wellFormedRequestID(got) {
			t.Errorf("requestID(%q) = %q is not well formed", tt.in, got)
		}
	}
	if requestID("") == requestID("") {
		t.Error("two fresh ids are equal")
	}
}

// FuzzRequestID: whatever a client sends, the id that reaches logs, audit
// records and the response header is well formed, and a well-formed one is
// kept as sent.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", strings.Repeat("z", 200), "\x00", "ü-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := requestID(in)
		if !wellFormedRequestID(got) || len(got) > maxRequestIDLength {
			t.Fatalf("requestID(%q) = %q", in, got)
		}
		if wellFormedRequestID(in) && got != in {
			t.Fatalf("well-formed %q replaced by %q", in, got)
		}
	})
}
