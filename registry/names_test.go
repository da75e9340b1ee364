package registry

import (
	"strings"
	"testing"
	"unicode"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"fraud-detector", true},
		{"team/nlp/tokenizer", true},
		{"model_v2.onnx", true},
		{"a", true},
		{"", false},
		{"Fraud", false},
		{"a//b", false},
		{"/a", false},
		{"a/", false},
		{"..", false},
		{"a/../b", false},
		{"a/./b", false},
		{"-a", false},
		{"a-", false},
		{"a--b", false},
		{"a b", false},
		{"a\x00b", false},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{strings.Repeat("a/", 100) + "a", false},
	}
	for _, tt := range tests {
		_, err := ParseName(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseName(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && AsError(err).Code != CodeInvalidName.Name {
			t.Errorf("ParseName(%q) code = %s", tt.in, AsError(err).Code)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in, canonical string
		ok            bool
	}{
		{"1.2.3", "1.2.3", true},
		{"v1.2.3", "1.2.3", true},
		{"2.0.0-rc.1", "2.0.0-rc.1", true},
		{"1.0.0+build.5", "1.0.0+build.5", true},
		{"latest", "", false},
		{"1.2", "", false},
		{"^1.2", "", false},
		{"1.2.x", "", false},
		{"01.2.3", "", false},
		{"", "", false},
		{"vv1.2.3", "", false},
		{strings.Repeat("1", 200) + ".0.0", "", false},
	}
	for _, tt := range tests {
		v, err := ParseVersion(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseVersion(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (v.Canonical != tt.canonical || v.Original != tt.in) {
			t.Errorf("ParseVersion(%q) = %+v, want canonical %s", tt.in, v, tt.canonical)
		}
	}
}

func TestParseFilePath(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"model.safetensors", true},
		{"shards/model-00001-of-00002.safetensors", true},
		{"tokenizer/vocab ü.txt", true},
		{"/etc/passwd", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/./x", false},
		{"a//x", false},
		{`a\x`, false},
		{"a\nb", false},
		{"", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		_, err := ParseFilePath(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseFilePath(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"fraud-detector", "a/b/c", "..", "a/../b", "A", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := ParseName(s)
		if err != nil {
			return
		}
		// Whatever is accepted is safe as a bucket key prefix and URL path.
		if name != s || len(name) > MaxNameLength || strings.Contains(name, "..") ||
			strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
			t.Fatalf("accepted unsafe name %q", s)
		}
		for _, seg := range strings.Split(name, "/") {
			if seg == "-" || seg == "." {
				t.Fatalf("accepted reserved segment in %q", s)
			}
		}
		for _, r := range name {
			if unicode.IsUpper(r) || unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII {
				t.Fatalf("accepted %q with rune %q", s, r)
			}
		}
	})
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "v1.2.3", "2.0.0-rc.1+b", "latest", "^1.2", "1.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		// Canonical form is a fixed point: parsing it again gives itself.
		again, err := ParseVersion(v.Canonical)
		if err != nil || again.Canonical != v.Canonical {
			t.Fatalf("canonical %q of %q does not round-trip: %v", v.Canonical, s, err)
		}
	})
}

func FuzzParseFilePath(f *testing.F) {
	for _, s := range []string{"a/b.bin", "../x", "/abs", "a\\b", "a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseFilePath(s)
		if err != nil {
			return
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted path %q escaping its directory", s)
			}
		}
		if strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
			t.Fatalf("accepted unsafe path %q", s)
		}
	})
}
