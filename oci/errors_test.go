package oci

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/registry"
)

func TestWire(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		endpoint Endpoint
		code     string
		status   int
	}{
		{"unauthenticated", registry.CodeUnauthenticated.Errorf("x"), Base, "UNAUTHORIZED", 401},
		{"foreign environment", registry.CodeWrongEnvironment.Errorf("x"), Manifest, "DENIED", 403},
		{"role", registry.CodeForbidden.Errorf("x"), Tags, "DENIED", 403},
		{"publish elsewhere", registry.CodePublishNotFirst.Errorf("x"), UploadStart, "DENIED", 403},
		{"version not found", registry.CodeVersionNotFound.Errorf("x"), Manifest, "MANIFEST_UNKNOWN", 404},
		{"blob not found", registry.CodeNotFound.Errorf("x"), Blob, "BLOB_UNKNOWN", 404},
		{"upload not found", registry.CodeNotFound.Errorf("x"), Upload, "BLOB_UPLOAD_UNKNOWN", 404},
		{"no such name", registry.CodeNotFound.Errorf("x"), Tags, "NAME_UNKNOWN", 404},
		{"invalid name", registry.CodeInvalidName.Errorf("x"), Manifest, "NAME_INVALID", 400},
		{"digest mismatch", registry.CodeDigestMismatch.Errorf("x"), Upload, "DIGEST_INVALID", 400},
		{"missing layer", registry.CodeBlobNotFound.Errorf("x"), Manifest, "MANIFEST_BLOB_UNKNOWN", 400},
		{"bad manifest", registry.CodeInvalidRequest.Errorf("x"), Manifest, "MANIFEST_INVALID", 400},
		{"immutable", registry.CodeVersionExists.Errorf("x"), Manifest, "TAG_INVALID", 409},
		{"kind", registry.CodeKindMismatch.Errorf("x"), Manifest, "MANIFEST_INVALID", 409},
		{"too large", registry.CodeTooLarge.Errorf("x"), Upload, "SIZE_INVALID", 413},
		{"method", registry.CodeMethodNotAllowed.Errorf("x"), Manifest, "UNSUPPORTED", 405},
		{"unavailable", registry.CodeUnavailable.Errorf("x"), Blob, "UNAVAILABLE", 503},
		{"rate limited", registry.CodeRateLimited.Errorf("x"), Blob, "TOOMANYREQUESTS", 429},
		{"internal", errors.New("secret path /var/x"), Blob, "UNKNOWN", 500},
		{"oci error as is", CodeTagInvalid.Errorf("x"), Manifest, "TAG_INVALID", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Wire(tt.err, tt.endpoint)
			if e.Code.Name != tt.code || e.Status != tt.status {
				t.Fatalf("Wire = %s %d, want %s %d", e.Code.Name, e.Status, tt.code, tt.status)
			}
			if tt.status == http.StatusInternalServerError && e.Message != "internal error; see the server log for the request id" {
				t.Fatalf("an internal error's text reaches the client: %q", e.Message)
			}
			if b := e.Body(); len(b.Errors) != 1 || b.Errors[0].Code != tt.code || b.Errors[0].Message == "" {
				t.Fatalf("Body = %+v", b)
			}
		})
	}
}

// TestWireMapsEveryKind: a kind added to the domain later is not answered
// as a server fault by default.
func TestWireMapsEveryKind(t *testing.T) {
	for k := registry.ErrorKind(0); !strings.HasPrefix(k.String(), "kind("); k++ {
		e := Wire(&registry.Error{Kind: k, Code: "x", Message: "x"}, Manifest)
		if (e.Status == http.StatusInternalServerError) != (k == registry.Internal) {
			t.Errorf("kind %s is answered %d %s", k, e.Status, e.Code.Name)
		}
	}
}
