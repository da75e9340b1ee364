package server_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// withQuery adds key=value to a Location, which may carry a query of its
// own (an upload's offset), as registry clients do.
func withQuery(loc, key, value string) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}

// ociOpen opens a blob upload in repo and returns its Location.
func ociOpen(t *testing.T, s *stack, repo, authorization string) string {
	t.Helper()
	resp, data := ociSend(t, http.MethodPost, repo+"/blobs/uploads/", authorization, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" || resp.Header.Get("Range") != "0-0" || resp.Header.Get("Docker-Upload-UUID") == "" {
		t.Fatalf("POST upload = %d %q %v %s", resp.StatusCode, loc, resp.Header, data)
	}
	return loc
}

// TestOCIChunkedUpload: POST, PATCH…, PUT ?digest= — chunks with
// Content-Range, a streamed chunk without a length, the last chunk in the
// PUT — stores the blob verified, and refuses what a client can get wrong
// without leaving anything visible: a wrong digest, chunks out of order or
// twice, a forged offset, another environment's upload.
func TestOCIChunkedUpload(t *testing.T) {
	t.Parallel()
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			s := permissiveStagingStack(t, kind)
			pub := basic(s.key("dev", auth.RolePublisher))
			repo := s.url + "/v2/dev/team/chunked"
			blob := randomBytes(t, 3<<20+12345)
			dgst := registry.DigestOf(blob).String()
			parts := [][]byte{blob[:1<<20], blob[1<<20 : 2<<20], blob[2<<20 : 3<<20], blob[3<<20:]}

			patch := func(loc string, body []byte, headers ...string) (*http.Response, []byte) {
				t.Helper()
				return ociSend(t, http.MethodPatch, s.url+loc, pub, body, headers...)
			}
			contentRange := func(start, n int) string {
				return "Content-Range: " + strconv.Itoa(start) + "-" + strconv.Itoa(start+n-1)
			}

			// Three chunks with Content-Range; the first twice (a retry
			// after the answer was lost) and one out of order are refused.
			loc := ociOpen(t, s, repo, pub)
			first := loc
			off := 0
			for i, part := range parts[:3] {
				resp, data := patch(loc, part, contentRange(off, len(part)), "Content-Type: application/octet-stream")
				if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != "0-"+strconv.Itoa(off+len(part)-1) {
					t.Fatalf("PATCH %d = %d %q %s", i, resp.StatusCode, resp.Header.Get("Range"), data)
				}
				off += len(part)
				loc = resp.Header.Get("Location")
			}
			for _, c := range []struct {
				name, loc string
				body      []byte
				headers   []string
				status    int
				code      string
			}{
				{"a chunk again at its offset", first, parts[0], []string{contentRange(0, len(parts[0]))}, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID"},
				{"a chunk out of order", loc, parts[3], []string{contentRange(off+10, len(parts[3]))}, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID"},
				{"an offset never reached", strings.Replace(loc, "offset="+strconv.Itoa(off), "offset=5", 1), parts[3], nil, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID"},
				{"a malformed range", loc, parts[3], []string{"Content-Range: ten-twenty"}, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID"},
				{"an unknown upload", "/v2/dev/team/chunked/blobs/uploads/" + strings.Repeat("0", 32), parts[3], nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
			} {
				resp, data := patch(c.loc, c.body, c.headers...)
				if code := ociErrorCode(t, c.name, resp, data); resp.StatusCode != c.status || code != c.code {
					t.Errorf("%s: PATCH %s = %d %s, want %d %s", c.name, c.loc, resp.StatusCode, code, c.status, c.code)
				}
			}
			// The upload's status.
			resp, data := ociSend(t, http.MethodGet, s.url+loc, pub, nil)
			if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != "0-"+strconv.Itoa(off-1) {
				t.Errorf("GET upload = %d %q %s", resp.StatusCode, resp.Header.Get("Range"), data)
			}
			// A wrong digest at the end stores nothing; the right one then does.
			wrong := registry.DigestOf([]byte("not these bytes")).String()
			resp, data = ociSend(t, http.MethodPut, s.url+withQuery(loc, "digest", wrong), pub, nil)
			if code := ociErrorCode(t, "wrong digest", resp, data); resp.StatusCode != http.StatusBadRequest || code != "DIGEST_INVALID" {
				t.Errorf("PUT with a wrong digest = %d %s", resp.StatusCode, code)
			}
			if resp, _ := ociRequest(t, http.MethodHead, repo+"/blobs/"+wrong, pub); resp.StatusCode != http.StatusNotFound {
				t.Errorf("after a refused PUT, blob %s = %d", wrong, resp.StatusCode)
			}
			// The last chunk in the PUT.
			resp, data = ociSend(t, http.MethodPut, s.url+withQuery(loc, "digest", dgst), pub, parts[3])
			if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != dgst {
				t.Fatalf("PUT = %d %v %s", resp.StatusCode, resp.Header, data)
			}
			resp, got := ociRequest(t, http.MethodGet, repo+"/blobs/"+dgst, pub)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got, blob) {
				t.Fatalf("GET blob = %d, %d bytes, want the %d uploaded", resp.StatusCode, len(got), len(blob))
			}
			// The finished upload is gone.
			if resp, _ := ociSend(t, http.MethodGet, s.url+loc, pub, nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET of a finished upload = %d, want 404", resp.StatusCode)
			}
			// Stream-once: the chunks are the blob, nothing wrote it again.
			if kind == "embedded" {
				root := s.cfg.BlobDir("dev")
				hex := strings.TrimPrefix(dgst, "sha256:")
				if _, err := os.Stat(filepath.Join(root, "blobs", "sha256", hex)); !os.IsNotExist(err) {
					t.Errorf("the chunked upload was written again to blobs/sha256/%s (%v)", hex, err)
				}
				if _, err := os.Stat(filepath.Join(root, "parts", "sha256", hex)); err != nil {
					t.Errorf("no parts object for the chunked upload: %v", err)
				}
			}
			// As a version's file it is read, published, promoted (a real
			// copy in staging) and served there like any other blob.
			ociPushImage(t, s, pub, "team/chunked-image", "1.0.0", blob)
			if _, err := s.client(s.key("staging", auth.RolePromoter)).Promote(context.Background(), "staging", client.PromoteRequest{Name: "team/chunked-image", Version: "1.0.0"}); err != nil {
				t.Fatalf("promoting a version whose file is kept in parts: %v", err)
			}
			if resp, got := ociRequest(t, http.MethodGet, s.url+"/v2/staging/team/chunked-image/blobs/"+dgst, basic(s.key("staging", auth.RoleReader))); resp.StatusCode != http.StatusOK || !bytes.Equal(got, blob) {
				t.Fatalf("GET of the promoted blob = %d, %d bytes", resp.StatusCode, len(got))
			}
			if resp, got := ociRequest(t, http.MethodGet, repo+"/blobs/"+dgst, pub, "Range: bytes=1048570-1048580"); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, blob[1048570:1048581]) {
				t.Errorf("range across two chunks = %d %q", resp.StatusCode, got)
			}

			// Streamed: one PATCH without a length (chunked transfer
			// encoding), then an empty PUT, as crane does.
			other := randomBytes(t, 2<<20+7)
			loc = ociOpen(t, s, repo, pub)
			req, err := http.NewRequest(http.MethodPatch, s.url+loc, io.MultiReader(bytes.NewReader(other[:1000]), bytes.NewReader(other[1000:])))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", pub)
			req.ContentLength = -1
			sresp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			sresp.Body.Close()
			if sresp.StatusCode != http.StatusAccepted || sresp.Header.Get("Range") != "0-"+strconv.Itoa(len(other)-1) {
				t.Fatalf("streamed PATCH = %d %q", sresp.StatusCode, sresp.Header.Get("Range"))
			}
			od := registry.DigestOf(other).String()
			resp, data = ociSend(t, http.MethodPut, s.url+withQuery(sresp.Header.Get("Location"), "digest", od), pub, nil)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("PUT after a streamed PATCH = %d %s", resp.StatusCode, data)
			}

			// An upload opened in dev is unknown to staging, whose pushes
			// are refused anyway, and a reader may not append.
			loc = ociOpen(t, s, repo, pub)
			staging := strings.Replace(loc, "/v2/dev/", "/v2/staging/", 1)
			resp, data = ociSend(t, http.MethodPatch, s.url+staging, basic(s.key("staging", auth.RoleAdmin)), []byte("x"))
			if code := ociErrorCode(t, "staging", resp, data); resp.StatusCode != http.StatusMethodNotAllowed || code != "UNSUPPORTED" {
				t.Errorf("PATCH into staging = %d %s", resp.StatusCode, code)
			}
			resp, data = ociSend(t, http.MethodPatch, s.url+loc, basic(s.key("dev", auth.RoleReader)), []byte("x"))
			if code := ociErrorCode(t, "reader", resp, data); resp.StatusCode != http.StatusForbidden || code != "DENIED" {
				t.Errorf("PATCH by a reader = %d %s", resp.StatusCode, code)
			}
			// Nothing of any of this became a version.
			if versions, err := s.client(s.key("dev", auth.RoleReader)).ListVersions(context.Background(), "dev", "team/chunked"); err == nil && len(versions) != 0 {
				t.Errorf("versions after blob uploads: %v", versions)
			}
		})
	}
}

// TestOCICranePush: crane pushes an image into dev with a semver tag —
// its blobs go up as chunked uploads (POST, PATCH, PUT) — and pulls back
// the same bytes; the image is a version like any other.
func TestOCICranePush(t *testing.T) {
	t.Parallel()
	crane := peerTool(t, "STAGEGATE_TEST_CRANE", "crane")
	s, _ := ociStack(t, "embedded")
	host := strings.TrimPrefix(s.url, "http://")
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		return mustRunTool(t, dir, crane, args...)
	}
	run("auth", "login", host, "-u", "ci", "-p", s.key("dev", auth.RolePublisher))
	layer := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(layer, tarOf(t, "model.bin", randomBytes(t, 3<<20+5)), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := host + "/dev/team/crane-image:1.0.0"
	run("append", "--insecure", "--oci-empty-base", "-f", layer, "-t", ref)
	if out := run("ls", "--insecure", host+"/dev/team/crane-image"); !strings.Contains(out, "1.0.0") {
		t.Errorf("crane ls = %q", out)
	}
	run("pull", "--insecure", "--format=oci", ref, filepath.Join(dir, "pulled"))
	rec, err := s.client(s.key("dev", auth.RoleReader)).GetVersion(context.Background(), "dev", "team/crane-image", "1.0.0")
	if err != nil || rec.Kind != "generic" || len(rec.Files) != 1 || rec.Files[0].Path != "layer-0000" {
		t.Fatalf("crane's image as a version: %+v %v", rec, err)
	}
}

// tarOf is a tar archive holding one file.
func tarOf(t *testing.T, name string, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
