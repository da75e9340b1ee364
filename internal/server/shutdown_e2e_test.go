package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/internal/signing/signingtest"
	"github.com/stagegate/stagegate/registry"
)

// generated is size bytes of a seeded ChaCha8 stream: a large body that is
// never held in memory, and that a second generator with the same seed
// reproduces for hashing. When pauseAt > 0 it stops there, tells paused,
// and goes on once resume is closed.
type generated struct {
	src       *rand.ChaCha8
	left      int64
	sent      int64
	pauseAt   int64
	paused    chan<- struct{}
	resume    <-chan struct{}
	hasPaused bool
}

func newGenerated(seed byte, size int64) *generated {
	return &generated{src: rand.NewChaCha8([32]byte{seed}), left: size}
}

func (g *generated) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if g.pauseAt > 0 && !g.hasPaused {
		if g.sent == g.pauseAt {
			g.hasPaused = true
			close(g.paused)
			<-g.resume
		} else if g.sent+int64(len(p)) > g.pauseAt {
			p = p[:g.pauseAt-g.sent]
		}
	}
	p = p[:min(int64(len(p)), g.left)]
	n, _ := g.src.Read(p)
	g.left -= int64(n)
	g.sent += int64(n)
	return n, nil
}

// TestGracefulShutdown sends SIGTERM to a real `stagegate serve` (the
// embedded default) while a 256 MiB blob upload is in flight: new
// connections are refused at once, the upload still completes with 201 and
// its blob is stored intact, and the process exits 0 within the configured
// shutdown timeout.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and uploads 256 MiB; skipped with -short")
	}
	t.Parallel()
	const (
		size            = 256 << 20
		pauseAt         = 32 << 20
		shutdownTimeout = 90 * time.Second
	)
	bin := buildStagegate(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	env := processEnv("STAGEGATE_SHUTDOWN_TIMEOUT=" + shutdownTimeout.String())

	keys := exec.Command(bin, "keys", "create", "--data-dir", dataDir, "--env", "dev", "--role", "publisher", "--name", "uploader")
	keys.Env = env
	out, err := keys.Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	token := strings.TrimSpace(string(out))

	// Hashing the body overlaps with serve's start (key generation).
	h := sha256.New()
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		_, _ = io.Copy(h, newGenerated(7, size))
	}()
	p := startServe(t, "serve", bin, env, "--addr", "127.0.0.1:0", "--data-dir", dataDir)
	<-hashed
	dgst := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
	addr := strings.TrimPrefix(p.url, "http://")

	paused, resume := make(chan struct{}), make(chan struct{})
	body := newGenerated(7, size)
	body.pauseAt, body.paused, body.resume = pauseAt, paused, resume
	type answer struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		req, err := http.NewRequest(http.MethodPut, p.url+"/v1/environments/dev/blobs/"+dgst.String(), body)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+token)
		hc := &http.Client{Transport: &http.Transport{}}
		resp, err := hc.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		answered <- answer{status: resp.StatusCode, body: data, err: err}
	}()
	release := sync.OnceFunc(func() { close(resume) })
	defer release() // unblocks the body should the test fail early

	select {
	case <-paused:
	case a := <-answered:
		t.Fatalf("the upload ended before it was under way: %d %s %v", a.status, a.body, a.err)
	case <-time.After(time.Minute):
		t.Fatal("the upload did not reach 32 MiB within a minute")
	}
	p.signal(syscall.SIGTERM)
	signalled := time.Now()

	// The listener closes at once: a new connection is refused while the
	// upload is still in flight (its body is paused).
	refused := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial after SIGTERM: %v, want connection refused", err)
			}
			refused = true
			break
		}
		conn.Close()
	}
	if !refused {
		t.Fatal("new connections are still accepted 15s after SIGTERM")
	}
	_, err = (&http.Client{Transport: &http.Transport{}}).Get(p.url + "/healthz")
	var ue *url.Error
	if !errors.As(err, &ue) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET /healthz after SIGTERM: %v, want connection refused", err)
	}
	select {
	case <-p.exited:
		t.Fatalf("serve exited with the upload in flight: %v", p.waitErr)
	default:
	}

	release()
	var a answer
	select {
	case a = <-answered:
	case <-time.After(shutdownTimeout):
		t.Fatal("the upload did not complete")
	}
	if a.err != nil || a.status != http.StatusCreated {
		t.Fatalf("upload after SIGTERM: %d %s %v, want 201", a.status, a.body, a.err)
	}
	var res api.BlobUploadResponse
	if err := json.Unmarshal(a.body, &res); err != nil || !res.Created || res.Digest != dgst {
		t.Fatalf("upload answer %s (%v)", a.body, err)
	}

	code, exited := p.wait(shutdownTimeout - time.Since(signalled))
	if !exited {
		t.Fatalf("serve did not exit within the shutdown timeout of %s", shutdownTimeout)
	}
	if code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0", code)
	}
	t.Logf("exited 0 %s after SIGTERM", time.Since(signalled).Round(time.Millisecond))

	f, err := os.Open(filepath.Join(dataDir, "blobs", "dev", filepath.FromSlash(registry.BlobKey(dgst))))
	if err != nil {
		t.Fatalf("the uploaded blob is not stored: %v", err)
	}
	defer f.Close()
	h.Reset()
	n, err := io.Copy(h, f)
	if err != nil || n != size || fmt.Sprintf("%x", h.Sum(nil)) != dgst.Hex {
		t.Fatalf("the stored blob is %d bytes hashing to %x (%v), want %d bytes of %s", n, h.Sum(nil), err, size, dgst)
	}
}

// TestShutdownTimeoutCutsStalledRequests: a request still running when
// server.shutdown_timeout ends is cut, and Serve reports it, so that serve
// exits non-zero instead of waiting for ever.
func TestShutdownTimeoutCutsStalledRequests(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	cfg := stackConfig(t, "embedded", func(c *config.Config) {
		c.Addr = "127.0.0.1:0"
		c.Server.ShutdownTimeout = timeout
	})
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
		server.WithSigners(signingtest.Signers(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	token := (&stack{t: t, srv: srv, cfg: cfg}).key("dev", auth.RolePublisher)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc, errc := make(chan string, 1), make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, func(addr string) { addrc <- addr }) }()
	addr := <-addrc

	// An upload whose client stops sending after 1 MiB, and never resumes;
	// a raw connection, so that what the server does to it shows.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/environments/dev/blobs/sha256:%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n",
		strings.Repeat("0", 64), addr, token, 8<<20)
	if _, err := conn.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the handler is reading the body
	cancel()
	cancelled := time.Now()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "shutdown") {
			t.Fatalf("Serve with a request stalled past the shutdown timeout returned %v, want a shutdown error", err)
		}
		if d := time.Since(cancelled); d < timeout {
			t.Fatalf("Serve returned %s after cancel, before the shutdown timeout of %s", d, timeout)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return within 30s of cancel")
	}
	// The server closed the connection: the read ends at once (EOF or
	// reset), it does not wait for the deadline.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the stalled upload's connection is still open 10s after shutdown")
		}
	}
}
