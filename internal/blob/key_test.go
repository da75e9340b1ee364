package blob

import (
	"errors"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"blobs/sha256/" + strings.Repeat("a", 64), true},
		{"refs/team/nlp/tokenizer/1.2.3", true},
		{"signatures/sha256/abc/key-1", true},
		{"a", true},
		{"a.b/c..d/e.", true},
		{"ünïcode/ok", true},
		{"", false},
		{"/abs", false},
		{"a/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"a/../b", false},
		{"a/./b", false},
		{"../a", false},
		{".tmp/put-1", false},
		{"a/.hidden", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"a\tb", false},
		{"a\x7fb", false},
		{"a\u0085b", false},
		{"a\xffb", false},
		{strings.Repeat("a", MaxSegmentLength), true},
		{strings.Repeat("a", MaxSegmentLength+1), false},
		{strings.Repeat("a/", MaxKeyLength/2) + "a", false},
	}
	for _, tt := range tests {
		err := CheckKey(tt.key)
		if tt.ok && err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", tt.key, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalidKey", tt.key, err)
		}
	}
}

// FuzzCheckedKey asserts the property drivers rely on: an accepted key is
// a clean relative path that cannot leave the bucket root or be rewritten
// by path normalisation, and every refusal wraps ErrInvalidKey.
func FuzzCheckedKey(f *testing.F) {
	for _, s := range []string{"blobs/sha256/abc", "a/../b", "/x", "a//b", `a\b`, ".tmp/x", "a\x00", "\xff", "ok/key"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := CheckKey(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("CheckKey(%q) = %v, not ErrInvalidKey", key, err)
			}
			return
		}
		if path.Clean(key) != key || path.IsAbs(key) || strings.HasPrefix(key, "..") {
			t.Fatalf("accepted key %q is not a clean relative path", key)
		}
		if !utf8.ValidString(key) || strings.ContainsAny(key, "\\\x00") || len(key) > MaxKeyLength {
			t.Fatalf("accepted unsafe key %q", key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg[0] == '.' {
				t.Fatalf("accepted key %q with segment %q", key, seg)
			}
		}
	})
}
