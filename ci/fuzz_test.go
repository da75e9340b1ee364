package ci

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzAnnotation: a reason or file name from a gate report (test names,
// archive members: text an artifact controls) always makes exactly one
// workflow command, whose message decodes back to the text.
func FuzzAnnotation(f *testing.F) {
	f.Add("1 secret in config.yaml", "config.yaml", "secret-scan failed")
	f.Add("line1\n::error::forged\r\n%0A", "a,b:c.txt", "x::y")
	f.Fuzz(func(t *testing.T, msg, file, title string) {
		s := Annotation{Level: "error", Title: title, Message: msg, File: file, Line: 3}.String()
		if strings.ContainsAny(s, "\r\n") {
			t.Fatalf("command spans lines: %q", s)
		}
		i := strings.Index(s[2:], "::")
		if i < 0 {
			t.Fatalf("no message separator: %q", s)
		}
		got, err := url.PathUnescape(s[2+i+2:])
		if err != nil || got != msg {
			t.Fatalf("message %q decodes to %q (%v)", msg, got, err)
		}
	})
}
