package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	dgst := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		in   string
		want Path
		code string // the OCI code of the refusal; "" for success
	}{
		{in: "/", want: Path{Endpoint: Base}},
		{in: "", want: Path{Endpoint: Base}},
		{in: "/_catalog", want: Path{Endpoint: Catalog}},
		{in: "/prod/fraud-detector/tags/list", want: Path{Endpoint: Tags, Env: "prod", Name: "fraud-detector"}},
		{in: "/prod/team/agent/manifests/1.2.0", want: Path{Endpoint: Manifest, Env: "prod", Name: "team/agent", Reference: "1.2.0"}},
		{in: "/prod/team/agent/manifests/" + dgst, want: Path{Endpoint: Manifest, Env: "prod", Name: "team/agent", Reference: dgst}},
		{in: "/dev/a/blobs/" + dgst, want: Path{Endpoint: Blob, Env: "dev", Name: "a", Reference: dgst}},
		{in: "/dev/a/blobs/uploads/", want: Path{Endpoint: UploadStart, Env: "dev", Name: "a"}},
		{in: "/dev/a/blobs/uploads", want: Path{Endpoint: UploadStart, Env: "dev", Name: "a"}},
		{in: "/dev/a/blobs/uploads/abc-123", want: Path{Endpoint: Upload, Env: "dev", Name: "a", Reference: "abc-123"}},
		{in: "/dev/a/referrers/" + dgst, want: Path{Endpoint: Referrers, Env: "dev", Name: "a", Reference: dgst}},
		// Names are matched from the right: a name may contain the
		// segments that name endpoints.
		{in: "/prod/blobs/manifests/manifests/1.0.0", want: Path{Endpoint: Manifest, Env: "prod", Name: "blobs/manifests", Reference: "1.0.0"}},
		{in: "/prod/tags/list/tags/list", want: Path{Endpoint: Tags, Env: "prod", Name: "tags/list"}},
		{in: "/prod/manifests/1.0.0", code: "NAME_INVALID"},       // no name after the environment
		{in: "/prod/Agent/manifests/1.0.0", code: "NAME_INVALID"}, // names are lowercase
		{in: "/Prod/agent/manifests/1.0.0", code: "NAME_INVALID"},
		{in: "/prod/a/../b/manifests/1.0.0", code: "NAME_INVALID"},
		{in: "/prod//a/manifests/1.0.0", code: "NAME_INVALID"},
		{in: "/prod/a/manifests/", code: "NAME_UNKNOWN"},
		{in: "/prod/a/unknown/x", code: "NAME_UNKNOWN"},
		{in: "/prod/a/uploads/x", code: "NAME_UNKNOWN"},
		{in: "/prod", code: "NAME_UNKNOWN"},
		{in: "/prod/a/manifests/1.0.0/" + strings.Repeat("x", MaxPathLength), code: "NAME_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePath(tt.in)
			if tt.code != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code.Name != tt.code {
					t.Fatalf("ParsePath(%q) = %+v, %v; want %s", tt.in, got, err, tt.code)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePath(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseReference(t *testing.T) {
	hex := strings.Repeat("0f", 32)
	tests := []struct {
		in       string
		tag, alg string
		code     string
	}{
		{in: "1.2.0", tag: "1.2.0"},
		{in: "v1.2.0", tag: "v1.2.0"},
		{in: "latest", tag: "latest"},
		{in: "sha256:" + hex, alg: "sha256"},
		{in: "sha512:" + strings.Repeat("ab", 64), alg: "sha512"},
		{in: "sha256:baddigeststring", code: "DIGEST_INVALID"},
		{in: "sha256:" + strings.ToUpper(hex), code: "DIGEST_INVALID"},
		{in: "sha256:", code: "DIGEST_INVALID"},
		{in: ":abc", code: "DIGEST_INVALID"},
		{in: "", code: "TAG_INVALID"},
		{in: ".hidden", code: "TAG_INVALID"},
		{in: "a b", code: "TAG_INVALID"},
		{in: strings.Repeat("a", 129), code: "TAG_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseReference(tt.in)
			if tt.code != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code.Name != tt.code {
					t.Fatalf("ParseReference(%q) = %+v, %v; want %s", tt.in, got, err, tt.code)
				}
				return
			}
			if err != nil || got.Tag != tt.tag || got.Digest.Algorithm != tt.alg || got.IsDigest() != (tt.alg != "") {
				t.Fatalf("ParseReference(%q) = %+v, %v", tt.in, got, err)
			}
		})
	}
}

// FuzzParsePath: any path parses or is refused with an OCI error, never a
// panic; what parses names a valid repository and round-trips.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/", "/_catalog", "/prod/a/tags/list", "/prod/team/agent/manifests/1.2.0",
		"/dev/a/blobs/uploads/", "/dev/a/blobs/uploads/x", "/dev/a/referrers/sha256:" + strings.Repeat("a", 64),
		"/prod/blobs/blobs/blobs/x", "//", "/a//b/manifests/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status >= 500 {
				t.Fatalf("ParsePath(%q): %v is not a client error", s, err)
			}
			return
		}
		if p.Endpoint == Base || p.Endpoint == Catalog {
			return
		}
		if p.Env == "" || p.Name == "" || strings.Contains(p.Env, "/") {
			t.Fatalf("ParsePath(%q) = %+v: no repository", s, p)
		}
		if !strings.Contains(s, p.Repository()) {
			t.Fatalf("ParsePath(%q) = %+v: the repository is not in the path", s, p)
		}
	})
}

// FuzzParseReference: references parse or are refused with a client error.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"1.2.0", "v1", "sha256:" + strings.Repeat("a", 64), "sha512:ab", "sha256:x", ":", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("ParseReference(%q): %v is not a 400", s, err)
			}
			return
		}
		if r.IsDigest() {
			if r.Digest.String() != s {
				t.Fatalf("ParseReference(%q) = digest %s", s, r.Digest)
			}
		} else if r.Tag != s || strings.Contains(s, ":") {
			t.Fatalf("ParseReference(%q) = tag %q", s, r.Tag)
		}
	})
}
