package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// rawRequest sends one request with a plain net/http client, as curl would.
func rawRequest(t *testing.T, method, u, token string, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// flipByte corrupts one byte of a stored blob of the embedded default.
func flipByte(t *testing.T, s *stack, env string, dgst string) {
	t.Helper()
	h, err := registry.ParseDigest(dgst)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.cfg.BlobDir(env), filepath.FromSlash(registry.BlobKey(h)))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptBytesNeverServedWhole: a plain HTTP client never receives a
// complete, well-framed body whose digest is wrong.
func TestCorruptBytesNeverServedWhole(t *testing.T) {
	s := newStack(t, "embedded", nil)
	pub := s.key("dev", auth.RolePublisher)
	reader := s.key("dev", auth.RoleReader)
	small := []byte("model: gpt\n")
	large := randomBytes(t, 2*1<<20+12345)
	res, err := push(t, s.client(pub), "dev", "corrupt@1.0.0", "generic", map[string][]byte{"small.txt": small, "large.bin": large})
	if err != nil {
		t.Fatal(err)
	}
	base := s.url + "/v1/environments/dev/artifacts/corrupt/-/versions/1.0.0"
	flipByte(t, s, "dev", registry.DigestOf(small).String())
	flipByte(t, s, "dev", registry.DigestOf(large).String())
	flipByte(t, s, "dev", res.Version.ManifestDigest.String())

	// Small content is verified before the first byte: an error status.
	for _, path := range []string{"/files/small.txt", "/manifest"} {
		resp, body, err := rawRequest(t, "GET", base+path, reader, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), `"code":"internal"`) {
			t.Errorf("GET %s of corrupt content = %d %s, want 500 with a JSON error", path, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("GET %s of corrupt content: Content-Type %q, want the JSON error's", path, ct)
		}
	}
	// Large content is cut short of its Content-Length: the client's read
	// fails instead of ending cleanly.
	resp, body, err := rawRequest(t, "GET", base+"/files/large.bin", reader, nil)
	if err == nil {
		t.Fatalf("GET of a corrupt large file: status %d, %d bytes, no error; want a truncated transfer", resp.StatusCode, len(body))
	}
	if int64(len(body)) >= int64(len(large)) {
		t.Fatalf("got %d of %d bytes", len(body), len(large))
	}
}

// TestManifestLimitAtPublish: a version whose manifest would exceed the
// one manifest limit is refused at publish, not stored and served cut short.
func TestManifestLimitAtPublish(t *testing.T) {
	s := newStack(t, "embedded", nil)
	ctx := context.Background()
	pub := s.key("dev", auth.RolePublisher)
	data := []byte("x")
	dgst := registry.DigestOf(data)
	if _, err := s.client(pub).UploadBlob(ctx, "dev", dgst, bytes.NewReader(data), 1); err != nil {
		t.Fatal(err)
	}
	var files []registry.File
	for i := range 4500 {
		seg := strings.Repeat("a", 240)
		p := fmt.Sprintf("%s/%s/%s/%s/f%05d", seg, seg, seg, seg, i)
		files = append(files, registry.File{Path: p, Digest: dgst, Size: 1})
	}
	body, _ := json.Marshal(map[string]any{"kind": "generic", "files": files})
	resp, out, err := rawRequest(t, "PUT", s.url+"/v1/environments/dev/artifacts/huge/-/versions/1.0.0", pub, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(out), "too_large") || !strings.Contains(string(out), "4194304") {
		t.Fatalf("publish of an oversized manifest = %d %.300s, want 413 too_large naming the limit", resp.StatusCode, out)
	}
	if _, err := s.client(pub).GetVersion(ctx, "dev", "huge", "1.0.0"); err == nil {
		t.Fatal("the refused version is visible")
	}
}

// TestTruncatedUploadIsClientError: a blob PUT that declares more bytes
// than it sends is the client's fault (400 incomplete_body), not 503, and
// leaves nothing behind.
func TestTruncatedUploadIsClientError(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		pub := s.key("dev", auth.RolePublisher)
		data := randomBytes(t, 100)
		dgst := registry.DigestOf(data).String()
		u, _ := url.Parse(s.url)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT /v1/environments/dev/blobs/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n", dgst, u.Host, pub)
		conn.Write(data[:50])
		conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), registry.CodeIncompleteBody.Name) {
			t.Fatalf("truncated upload = %d %s, want 400 %s", resp.StatusCode, body, registry.CodeIncompleteBody.Name)
		}
		head, _, err := rawRequest(t, "HEAD", s.url+"/v1/environments/dev/blobs/"+dgst, pub, nil)
		if err != nil || head.StatusCode != http.StatusNotFound {
			t.Fatalf("after a truncated upload HEAD = %v %v, want 404", head, err)
		}
	})
}

// TestBadTokenFloodBounded: a flood of bad tokens writes a bounded number of
// audit rows, the last of which says how many were left out.
func TestBadTokenFloodBounded(t *testing.T) {
	s := newStack(t, "embedded", nil)
	const flood = 300
	for i := range flood {
		resp, _, err := rawRequest(t, "GET", s.url+"/v1/environments/dev/artifacts", fmt.Sprintf("sgk_bad%d", i), nil)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %v %v", i, resp, err)
		}
	}
	events, err := s.client(s.key("dev", auth.RoleReader)).Audit(context.Background(), "dev", url.Values{"action": {"authenticate"}, "limit": {"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) >= flood/2 || len(events) == 0 {
		t.Fatalf("%d bad tokens wrote %d audit rows, want a bounded number", flood, len(events))
	}
	// One more refusal after the budget refills reports the flood.
	time.Sleep(300 * time.Millisecond)
	if resp, _, err := rawRequest(t, "GET", s.url+"/v1/environments/dev/artifacts", "sgk_bad", nil); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("last bad token: %v %v", resp, err)
	}
	events, err = s.client(s.key("dev", auth.RoleReader)).Audit(context.Background(), "dev", url.Values{"action": {"authenticate"}, "limit": {"1"}})
	if err != nil || len(events) != 1 || events[0].Details["suppressed"] == "" {
		t.Fatalf("newest refusal %+v (%v) does not report the suppressed ones", events, err)
	}
}

// TestSmallHardening: the smaller refusals answer with the code and status
// the README promises.
func TestSmallHardening(t *testing.T) {
	s := newStack(t, "embedded", nil)
	pub := s.key("dev", auth.RolePublisher)
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"malformed digest in a publish body", "PUT", "/v1/environments/dev/artifacts/a/-/versions/1.0.0", pub,
			`{"kind":"generic","files":[{"path":"x","digest":"sha256:XYZ","size":1}]}`, 400, registry.CodeInvalidDigest.Name},
		{"unknown field in a file of a publish body", "PUT", "/v1/environments/dev/artifacts/a/-/versions/1.0.0", pub,
			`{"kind":"generic","files":[{"path":"x","digest":"sha256:` + strings.Repeat("a", 64) + `","size":1,"evil":1}]}`, 400, registry.CodeInvalidRequest.Name},
		{"wrong method", "DELETE", "/v1/environments/dev/artifacts", pub, "", 405, registry.CodeMethodNotAllowed.Name},
		{"lowercase bearer scheme", "GET", "/v1/whoami", "", "", 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, s.url+c.path, strings.NewReader(c.body))
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			} else {
				req.Header.Set("Authorization", "bearer "+pub)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || (c.code != "" && !strings.Contains(string(body), `"code":"`+c.code+`"`)) {
				t.Fatalf("%s %s = %d %s, want %d %s", c.method, c.path, resp.StatusCode, body, c.status, c.code)
			}
			if c.status == http.StatusMethodNotAllowed && !strings.Contains(resp.Header.Get("Allow"), "GET") {
				t.Fatalf("405 without an Allow header naming GET: %q", resp.Header.Get("Allow"))
			}
		})
	}
}
