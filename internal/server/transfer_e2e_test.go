package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/internal/signing/signingtest"
	"github.com/stagegate/stagegate/registry"
)

// The limits these tests run with are small so the tests are short; every
// wait on the client side is several times longer than what it waits for,
// so a loaded machine slows the tests down rather than failing them.
const (
	testIdleTimeout   = 300 * time.Millisecond
	testHeaderTimeout = 500 * time.Millisecond
	testRateWindow    = 2 * time.Second
	testMinRate       = 1 << 10 // per second
	testWriteStall    = 2 * time.Second
	// patience bounds every wait for the server to act; before the fix
	// these waits are where the tests fail.
	patience = 15 * time.Second
)

// logBuffer collects the server's log, written from its goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitForLine polls the log for a line holding every one of parts until
// patience runs out.
func (b *logBuffer) waitForLine(t *testing.T, parts ...string) {
	t.Helper()
	for end := time.Now().Add(patience); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
	lines:
		for _, line := range strings.Split(b.String(), "\n") {
			for _, p := range parts {
				if !strings.Contains(line, p) {
					continue lines
				}
			}
			return
		}
	}
	t.Fatalf("no log line holds all of %q; log:\n%s", parts, b.String())
}

// newServedStack runs the embedded default through Serve on a real
// listener, as `stagegate serve` does: connection timeouts live there, not
// in the handler that httptest would serve.
func newServedStack(t *testing.T) (*stack, *logBuffer) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr = "127.0.0.1:0"
	cfg.Server = config.Server{IdleTimeout: testIdleTimeout, ReadHeaderTimeout: testHeaderTimeout,
		WriteTimeout: testWriteStall, MinUploadRate: testMinRate, UploadRateWindow: testRateWindow,
		ShutdownTimeout: cfg.Server.ShutdownTimeout}
	logs := &logBuffer{}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)), server.WithSigners(signingtest.Signers(t)))
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	return &stack{t: t, url: serveInBackground(t, srv), srv: srv, cfg: cfg}, logs
}

func dial(t *testing.T, s *stack) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// wantClosedByServer reads until the server closes conn, failing if
// patience runs out first.
func wantClosedByServer(t *testing.T, conn net.Conn, r io.Reader) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(patience)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s", patience)
	}
}

// TestTransferLimits shares one served stack between its parts: starting
// one (generating its signing keys) costs more than the parts themselves.
func TestTransferLimits(t *testing.T) {
	s, logs := newServedStack(t)
	t.Run("idle connections closed", func(t *testing.T) { testIdleConnectionsClosed(t, s) })
	t.Run("slow upload cut", func(t *testing.T) { testSlowUploadCut(t, s, logs) })
	t.Run("steady transfers not cut", func(t *testing.T) { testSteadyTransfersNotCut(t, s, logs) })
	t.Run("stalled download cut", func(t *testing.T) { testStalledDownloadCut(t, s, logs) })
}

func testIdleConnectionsClosed(t *testing.T, s *stack) {
	tests := []struct {
		name string
		// send is written on a fresh connection; a complete request's
		// response is read before waiting for the close.
		send     string
		complete bool
	}{
		{"idle keep-alive after a request", "GET /healthz HTTP/1.1\r\nHost: stagegate\r\n\r\n", true},
		{"headers never finished", "GET /healthz HTTP/1.1\r\nHost: stagegate\r\n", false},
		{"nothing sent", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t, s)
			if _, err := io.WriteString(conn, tt.send); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			if tt.complete {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.Close {
					t.Fatalf("status %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
				}
			}
			wantClosedByServer(t, conn, br)
		})
	}
}

// blobPut is the head of a raw blob upload of content.
func blobPut(token string, content []byte) string {
	return fmt.Sprintf("PUT /v1/environments/dev/blobs/%s HTTP/1.1\r\nHost: stagegate\r\n"+
		"Authorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		registry.DigestOf(content), token, len(content))
}

func testSlowUploadCut(t *testing.T, s *stack, logs *logBuffer) {
	pub := s.key("dev", auth.RolePublisher)
	reader := s.key("dev", auth.RoleReader)
	tests := []struct {
		name string
		// every is how often one byte is sent; 0 sends no body byte at all.
		every time.Duration
	}{
		{"one byte every 200ms", 200 * time.Millisecond},
		{"nothing after the headers", 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := []byte(strings.Repeat(fmt.Sprintf("slow upload %d\n", i), 20))
			conn := dial(t, s)
			if _, err := io.WriteString(conn, blobPut(pub, content)); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			defer close(done)
			if tt.every > 0 {
				go func() {
					for _, b := range content {
						select {
						case <-done:
							return
						case <-time.After(tt.every):
						}
						if _, err := conn.Write([]byte{b}); err != nil {
							return
						}
					}
				}()
			}

			// The reply, or at worst the close, must come although the
			// client is still sending.
			if err := conn.SetReadDeadline(time.Now().Add(patience)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("upload still running after %s", patience)
			case err != nil:
				t.Logf("connection closed without a reply: %v", err)
			default:
				var body struct {
					Error struct{ Code, Message string }
				}
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || body.Error.Code != registry.CodeIncompleteBody.Name ||
					!strings.Contains(body.Error.Message, "upload slower than 1 KiB/s over 2s") {
					t.Fatalf("got %d %s %q, want 400 %s saying the upload was too slow",
						resp.StatusCode, body.Error.Code, body.Error.Message, registry.CodeIncompleteBody.Name)
				}
				if !resp.Close {
					t.Error("reply does not announce that the connection closes")
				}
			}

			path := "/v1/environments/dev/blobs/" + registry.DigestOf(content).String()
			logs.waitForLine(t, "level=WARN", "request body cut: upload too slow", "method=PUT", "path="+path,
				"min_rate_bytes_per_s=1024", "window=2s")
			head, _, err := rawRequest(t, http.MethodHead, s.url+path, reader, nil)
			if err != nil {
				t.Fatal(err)
			}
			if head.StatusCode != http.StatusNotFound {
				t.Fatalf("HEAD after the cut upload: %d, want 404 (nothing stored)", head.StatusCode)
			}
		})
	}
}

// testSteadyTransfersNotCut: the limits cut slowness and stalls, never size
// or total time.
func testSteadyTransfersNotCut(t *testing.T, s *stack, logs *logBuffer) {
	logStart := len(logs.String())
	pub := s.key("dev", auth.RolePublisher)
	reader := s.key("dev", auth.RoleReader)

	t.Run("slow upload above the minimum", func(t *testing.T) {
		// 512 B every 100ms is 5 KiB/s, five times the minimum, for
		// longer than a window.
		content := randomBytes(t, 16<<10)
		conn := dial(t, s)
		if _, err := io.WriteString(conn, blobPut(pub, content)); err != nil {
			t.Fatal(err)
		}
		for rest := content; len(rest) > 0; rest = rest[min(len(rest), 512):] {
			time.Sleep(100 * time.Millisecond)
			if _, err := conn.Write(rest[:min(len(rest), 512)]); err != nil {
				t.Fatal(err)
			}
		}
		if err := conn.SetReadDeadline(time.Now().Add(patience)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d, want 201", resp.StatusCode)
		}
	})

	large := randomBytes(t, 8<<20)
	t.Run("fast large upload", func(t *testing.T) {
		if _, err := push(t, s.client(pub), "dev", "steady@1.0.0", "generic", map[string][]byte{"model.bin": large}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("download read slowly but steadily", func(t *testing.T) {
		// 1 MiB every 400ms through a small receive buffer: the server
		// keeps writing for longer than the write stall limit, and every
		// write moves.
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				err = conn.(*net.TCPConn).SetReadBuffer(64 << 10)
			}
			return conn, err
		}}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequest(http.MethodGet, s.url+"/v1/environments/dev/artifacts/steady/-/versions/1.0.0/files/model.bin", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+reader)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var got bytes.Buffer
		for {
			time.Sleep(400 * time.Millisecond)
			n, err := io.CopyN(&got, resp.Body, 1<<20)
			if err == io.EOF || (err == nil && n == 0) {
				break
			}
			if err != nil {
				t.Fatalf("download broke off after %d bytes: %v", got.Len(), err)
			}
		}
		if !bytes.Equal(got.Bytes(), large) {
			t.Fatalf("downloaded %d bytes, want the %d uploaded", got.Len(), len(large))
		}
	})
	if log := logs.String()[logStart:]; strings.Contains(log, " cut") {
		t.Fatalf("a steady transfer was cut; log:\n%s", log)
	}
}

// testStalledDownloadCut: a client that stops reading loses its response
// after the write stall limit instead of holding the connection.
func testStalledDownloadCut(t *testing.T, s *stack, logs *logBuffer) {
	// Larger than what the socket buffers on both ends can absorb, so the
	// server's writes block once the client stops reading.
	large := randomBytes(t, 16<<20)
	if _, err := push(t, s.client(s.key("dev", auth.RolePublisher)), "dev", "stalled@1.0.0", "generic", map[string][]byte{"model.bin": large}); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, s)
	if err := conn.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "GET /v1/environments/dev/artifacts/stalled/-/versions/1.0.0/files/model.bin HTTP/1.1\r\n"+
		"Host: stagegate\r\nAuthorization: Bearer %s\r\n\r\n", s.key("dev", auth.RoleReader)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Stop reading until the server gives up on us.
	logs.waitForLine(t, "level=WARN", "response cut: client accepted no bytes", "path=/v1/environments/dev/artifacts/stalled/")
	if err := conn.SetReadDeadline(time.Now().Add(patience)); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= int64(len(large)) {
		t.Fatalf("stalled download delivered %d of %d bytes, err %v: want it cut short", n, len(large), err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s", patience)
	}
}
