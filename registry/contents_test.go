package registry

import (
	"bytes"
	"errors"
	"testing"
)

// TestCheckContents: inline contents are accepted only as the exact bytes
// of a listed file, within MaxInlineContents in all.
func TestCheckContents(t *testing.T) {
	agent := []byte(`{"model":"m"}`)
	file := File{Path: "agent.json", Digest: DigestOf(agent), Size: int64(len(agent))}
	big := bytes.Repeat([]byte{'x'}, MaxInlineContents+1)
	bigFile := File{Path: "big", Digest: DigestOf(big), Size: int64(len(big))}
	tests := []struct {
		name     string
		files    []File
		contents map[string][]byte
		code     Code // zero: accepted
	}{
		{"none", []File{file}, nil, Code{}},
		{"the file's bytes", []File{file}, map[string][]byte{"agent.json": agent}, Code{}},
		{"other bytes", []File{file}, map[string][]byte{"agent.json": []byte(`{"model":"n"}`)}, CodeDigestMismatch},
		{"one byte more", []File{file}, map[string][]byte{"agent.json": append(bytes.Clone(agent), ' ')}, CodeDigestMismatch},
		{"a path not listed", []File{file}, map[string][]byte{"other.json": agent}, CodeInvalidRequest},
		{"an invalid path", []File{file}, map[string][]byte{"../agent.json": agent}, CodeInvalidPath},
		{"too large in all", []File{bigFile}, map[string][]byte{"big": big}, CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkContents(tt.files, tt.contents)
			if tt.code.Name == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				for p, data := range tt.contents {
					if !bytes.Equal(got[p], data) {
						t.Errorf("contents of %q not kept", p)
					}
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code.Name {
				t.Fatalf("err = %v, want code %s", err, tt.code.Name)
			}
		})
	}
}

// FuzzCheckContents: whatever a client sends, contents are accepted only
// when they are the bytes the listed file's digest and size name.
func FuzzCheckContents(f *testing.F) {
	f.Add("agent.json", "agent.json", []byte(`{"a":1}`), []byte(`{"a":1}`), int64(7))
	f.Add("agent.json", "./agent.json", []byte("x"), []byte("y"), int64(1))
	f.Add("a/b", "a//b", []byte{}, []byte{}, int64(0))
	f.Fuzz(func(t *testing.T, listed, named string, declared, sent []byte, size int64) {
		files := []File{{Path: listed, Digest: DigestOf(declared), Size: size}}
		got, err := checkContents(files, map[string][]byte{named: sent})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("refusal without a code: %v", err)
			}
			return
		}
		data, ok := got[listed]
		if !ok || !bytes.Equal(data, sent) || DigestOf(sent) != DigestOf(declared) || int64(len(sent)) != size {
			t.Fatalf("accepted %q for %q (%d bytes declared)", sent, listed, size)
		}
	})
}
