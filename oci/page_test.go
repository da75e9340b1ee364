package oci

import (
	"slices"
	"strconv"
	"testing"
)

func TestPage(t *testing.T) {
	names := func() []string { return []string{"1.2.0", "1.10.0", "2.0.0", "1.2.0"} }
	tests := []struct {
		n    int
		last string
		want []string
		more bool
	}{
		{n: -1, want: []string{"1.10.0", "1.2.0", "2.0.0"}},
		{n: 0, want: []string{}, more: true},
		{n: 2, want: []string{"1.10.0", "1.2.0"}, more: true},
		{n: 2, last: "1.2.0", want: []string{"2.0.0"}},
		{n: 3, want: []string{"1.10.0", "1.2.0", "2.0.0"}},
		{n: -1, last: "1.10.0", want: []string{"1.2.0", "2.0.0"}},
		{n: -1, last: "1.5", want: []string{"2.0.0"}}, // last need not be an entry
		{n: -1, last: "9", want: []string{}},
	}
	for _, tt := range tests {
		got, more := Page(names(), tt.n, tt.last)
		if !slices.Equal(got, tt.want) || more != tt.more {
			t.Errorf("Page(n=%d, last=%q) = %q, %v; want %q, %v", tt.n, tt.last, got, more, tt.want, tt.more)
		}
	}
	many := make([]string, MaxPage+5)
	for i := range many {
		many[i] = strconv.Itoa(100000 + i)
	}
	if got, more := Page(many, MaxPage+3, ""); len(got) != MaxPage || !more {
		t.Errorf("Page over MaxPage = %d entries, more %v; want %d and more", len(got), more, MaxPage)
	}
}

func TestParsePageSize(t *testing.T) {
	for in, want := range map[string]int{"": -1, "0": 0, "25": 25} {
		if got, err := ParsePageSize(in); err != nil || got != want {
			t.Errorf("ParsePageSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "x", "1.5", "99999999999999999999"} {
		if _, err := ParsePageSize(in); err == nil {
			t.Errorf("ParsePageSize(%q) succeeded", in)
		}
	}
}
