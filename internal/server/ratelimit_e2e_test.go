package server_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/registry"
)

// TestRateLimitEndToEnd: a key over its bucket is answered 429 with
// Retry-After and the rate_limited envelope, others are not affected, and
// the refusal of a mutation is audited. The limiter lives in the HTTP layer,
// the same for every storage, so the embedded default suffices.
func TestRateLimitEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t, "embedded", func(c *config.Config) {
		c.Limits.Requests.Default = config.Rate{PerSecond: 0.01, Burst: 3}
		c.Limits.Requests.Admin = &config.Rate{} // unlimited
	})
	publisher := s.key("dev", auth.RolePublisher)
	admin := s.key("dev", auth.RoleAdmin)
	for i := range 3 {
		resp, body, err := rawRequest(t, http.MethodGet, s.url+"/v1/whoami", publisher, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %v %s", i, err, body)
		}
	}
	blob := []byte("over the limit")
	resp, body, err := rawRequest(t, http.MethodPut, s.url+"/v1/environments/dev/blobs/"+registry.DigestOf(blob).String(), publisher, blob)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	var eb api.ErrorBody
	_ = json.Unmarshal(body, &eb)
	// 0.01/s: the next token is 100 s away.
	if resp.StatusCode != http.StatusTooManyRequests || after < 90 || after > 100 || eb.Error.Code != registry.CodeRateLimited.Name {
		t.Fatalf("over the limit: %d, Retry-After %q, %s; want 429, about 100, rate_limited", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, body, err := rawRequest(t, http.MethodGet, s.url+"/v1/whoami", admin, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("another key (unlimited role) is throttled too: %v %s", err, body)
	}
	resp, body, err = rawRequest(t, http.MethodGet, s.url+"/v1/environments/dev/audit?action=blob.upload&outcome=denied", admin, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("audit: %v %s", err, body)
	}
	if !bytes.Contains(body, []byte(`"rate_limited"`)) {
		t.Errorf("the throttled upload is not in the audit trail: %s", body)
	}
}

// TestUploadCapEndToEnd: with one upload of a key in flight, the key's next
// upload is 429 with Retry-After, another key's is not, and the slot is
// free again once the first upload ends.
func TestUploadCapEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t, "embedded", func(c *config.Config) { c.Limits.UploadsPerKey = 1 })
	publisher := s.key("dev", auth.RolePublisher)
	other := s.key("dev", auth.RoleAdmin)

	// The first upload, on a raw connection: half its body is written, far
	// more than the socket buffers hold while nobody reads (receive
	// buffers grow only as the reader consumes), so the write returns only
	// once the handler is streaming the body, holding the key's upload slot.
	// Probing with uploads instead would race the first for the slot.
	const size, half = 32 << 20, 16 << 20
	zeros := make([]byte, half)
	h := sha256.New()
	h.Write(zeros)
	h.Write(zeros)
	dgst := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
	u, _ := url.Parse(s.url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/environments/dev/blobs/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n",
		dgst, u.Host, publisher, size)
	if _, err := conn.Write(zeros); err != nil {
		t.Fatal(err)
	}

	put := func(token string, data []byte) (*http.Response, []byte) {
		resp, body, err := rawRequest(t, http.MethodPut, s.url+"/v1/environments/dev/blobs/"+registry.DigestOf(data).String(), token, data)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	resp, rb := put(publisher, []byte("a second upload"))
	var eb struct {
		Error struct {
			Code    string
			Details struct{ Limit string }
		}
	}
	_ = json.Unmarshal(rb, &eb)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" ||
		eb.Error.Code != registry.CodeRateLimited.Name || eb.Error.Details.Limit != "uploads" {
		t.Fatalf("a second upload in flight: %d, Retry-After %q, %s; want 429, 2, rate_limited uploads",
			resp.StatusCode, resp.Header.Get("Retry-After"), rb)
	}
	if resp, rb := put(other, []byte("another key's upload")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("another key's upload: %d %s", resp.StatusCode, rb)
	}

	if _, err := conn.Write(zeros); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	first, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	first.Body.Close()
	if first.StatusCode != http.StatusCreated {
		t.Fatalf("the first upload: %d, want 201", first.StatusCode)
	}
	if resp, rb := put(publisher, []byte("after the first upload")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("after the first upload ended: %d %s", resp.StatusCode, rb)
	}
}
