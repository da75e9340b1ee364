package oci

import (
	"errors"
	"net/http"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		header      string
		start, size int64
		ok          bool
	}{
		{"", -1, -1, true},
		{"0-99", 0, 100, true},
		{"100-100", 100, 1, true},
		{"bytes 100-199/1000", 100, 100, true},
		{"bytes 100-199/*", 100, 100, true},
		{"bytes=5-9", 5, 5, true},
		{" 7-8 ", 7, 2, true},
		{"99-0", 0, 0, false},
		{"-5", 0, 0, false},
		{"5-", 0, 0, false},
		{"ten-twenty", 0, 0, false},
		{"1-2-3", 0, 0, false},
		{"-1-5", 0, 0, false},
		{"99999999999999999999-1", 0, 0, false},
		{"0-9223372036854775807", 0, 0, false},
	} {
		start, size, err := ParseContentRange(tc.header)
		if (err == nil) != tc.ok || (tc.ok && (start != tc.start || size != tc.size)) {
			t.Errorf("ParseContentRange(%q) = %d, %d, %v; want %d, %d, ok=%v", tc.header, start, size, err, tc.start, tc.size, tc.ok)
		}
		var oe *Error
		if err != nil && (!errors.As(err, &oe) || oe.Status != http.StatusRequestedRangeNotSatisfiable) {
			t.Errorf("ParseContentRange(%q): error %v, want a 416 OCI error", tc.header, err)
		}
	}
}

func TestRangeHeader(t *testing.T) {
	for offset, want := range map[int64]string{0: "0-0", 1: "0-0", 2: "0-1", 1 << 20: "0-1048575"} {
		if got := RangeHeader(offset); got != want {
			t.Errorf("RangeHeader(%d) = %q, want %q", offset, got, want)
		}
	}
}

// FuzzParseContentRange: a client's Content-Range never panics, and what
// parses is a range a chunk can have.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"", "0-99", "bytes 1-2/3", "bytes=0-0", "9-1", "a-b", "-", "0--1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		start, size, err := ParseContentRange(h)
		if err != nil {
			return
		}
		if start == -1 && size == -1 {
			return
		}
		if start < 0 || size < 1 {
			t.Fatalf("ParseContentRange(%q) = %d, %d", h, start, size)
		}
	})
}
