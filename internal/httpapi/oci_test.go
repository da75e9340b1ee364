package httpapi

import "testing"

func TestParseRange(t *testing.T) {
	tests := []struct {
		h                    string
		size                 int64
		start, length        int64
		partial, satisfiable bool
	}{
		{"", 100, 0, 100, false, true},
		{"bytes=0-9", 100, 0, 10, true, true},
		{"bytes=90-", 100, 90, 10, true, true},
		{"bytes=90-200", 100, 90, 10, true, true}, // clipped to the end
		{"bytes=-5", 100, 95, 5, true, true},
		{"bytes=-500", 100, 0, 100, true, true},
		{"bytes=5-5", 100, 5, 1, true, true},
		{"bytes=100-", 100, 0, 0, false, false},
		{"bytes=-0", 100, 0, 0, false, false},
		{"bytes=0-", 0, 0, 0, false, false},
		{"bytes=0-1,4-5", 100, 0, 100, false, true}, // several ranges: served whole
		{"bytes=9-1", 100, 0, 100, false, true},     // malformed: served whole
		{"bytes=x-1", 100, 0, 100, false, true},
		{"items=0-1", 100, 0, 100, false, true},
		{"bytes=-", 100, 0, 100, false, true},
	}
	for _, tt := range tests {
		start, length, partial, ok := parseRange(tt.h, tt.size)
		if start != tt.start || length != tt.length || partial != tt.partial || ok != tt.satisfiable {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v, %v; want %d, %d, %v, %v", tt.h, tt.size, start, length, partial, ok,
				tt.start, tt.length, tt.partial, tt.satisfiable)
		}
	}
}

// FuzzParseRange: a Range header from a client never yields a range
// outside the blob.
func FuzzParseRange(f *testing.F) {
	for _, h := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=1-2,3-4", "bytes=99999999999999999999-"} {
		f.Add(h, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		start, length, partial, ok := parseRange(h, size)
		switch {
		case !ok:
			if partial {
				t.Fatalf("parseRange(%q, %d): unsatisfiable yet partial", h, size)
			}
		case partial:
			if start < 0 || length < 1 || start+length > size || start+length < start {
				t.Fatalf("parseRange(%q, %d) = [%d, +%d): outside the blob", h, size, start, length)
			}
		default:
			if start != 0 || length != size {
				t.Fatalf("parseRange(%q, %d) = [%d, +%d): a whole answer that is not the whole blob", h, size, start, length)
			}
		}
	})
}
