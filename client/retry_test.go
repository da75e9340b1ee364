package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/api"
)

// recordingPolicy retries without sleeping and records the waits.
func recordingPolicy(waits *[]time.Duration) RetryPolicy {
	p := DefaultRetry()
	p.sleep = func(_ context.Context, d time.Duration) error { *waits = append(*waits, d); return nil }
	p.jitter = func(max time.Duration) time.Duration { return max }
	return p
}

// blobStore is a create-once store behind a flaky front: the first attempt
// is refused with 503, the second is stored but its answer is lost (the
// connection drops), the third finds the blob there.
type blobStore struct {
	mu       sync.Mutex
	attempts int
	blobs    map[string][]byte
	creates  int
}

func (s *blobStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.attempts++
	attempt := s.attempts
	s.mu.Unlock()
	if attempt == 1 {
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error":{"code":"unavailable","message":"database unreachable"}}`, http.StatusServiceUnavailable)
		return
	}
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if !strings.HasSuffix(r.URL.Path, digest) {
		http.Error(w, `{"error":{"code":"digest_mismatch","message":"x"}}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	_, exists := s.blobs[digest]
	if !exists {
		s.blobs[digest] = body
		s.creates++
	}
	s.mu.Unlock()
	if attempt == 2 {
		// The side effect happened; the answer never arrives.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if exists {
		_, _ = w.Write([]byte(`{"created":false}`))
		return
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"created":true}`))
}

func TestRetryFailsTwiceThenSucceedsOnce(t *testing.T) {
	store := &blobStore{blobs: map[string][]byte{}}
	srv := httptest.NewServer(store)
	defer srv.Close()
	var waits []time.Duration
	var events []RetryEvent
	p := recordingPolicy(&waits)
	p.OnRetry = func(e RetryEvent) { events = append(events, e) }
	c := New(srv.URL, "sgk_x", nil).WithRetry(p)

	data := bytes.Repeat([]byte("weights"), 100000)
	path := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum := sha256.Sum256(data)
	dgst := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	var lines bytes.Buffer
	task := LineProgress(&lines, 0, time.Now).Start("upload model.bin", int64(len(data)))
	created, err := c.UploadBlob(context.Background(), "dev", dgst, &progressReader{r: f, task: task}, int64(len(data)))
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if store.attempts != 3 || store.creates != 1 || len(store.blobs) != 1 {
		t.Fatalf("attempts %d, creates %d, blobs %d: want 3 attempts and one blob", store.attempts, store.creates, len(store.blobs))
	}
	if created {
		t.Fatal("the third attempt found the blob the second stored: created must be false")
	}
	if len(events) != 2 || events[0].Attempt != 1 || events[1].Attempt != 2 || waits[0] != 0 {
		t.Fatalf("retry events %+v, waits %v (the first honours Retry-After: 0)", events, waits)
	}
	if !strings.Contains(lines.String(), "upload model.bin") {
		t.Fatalf("progress lines: %q", lines.String())
	}
}

func TestRetryAfterAndBackoff(t *testing.T) {
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		switch n {
		case 1:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		case 3:
			w.WriteHeader(http.StatusGatewayTimeout)
		default:
			_, _ = w.Write([]byte(`{"environment":"dev","role":"reader","actor":"a","credentialId":"k"}`))
		}
	}))
	defer srv.Close()
	var waits []time.Duration
	c := New(srv.URL, "sgk_x", nil).WithRetry(recordingPolicy(&waits))
	w, err := c.Whoami(context.Background())
	if err != nil || w.Environment != "dev" {
		t.Fatalf("whoami: %+v %v", w, err)
	}
	// Retry-After honoured; then exponential from the base, doubling.
	want := []time.Duration{7 * time.Second, time.Second, 2 * time.Second}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	p := DefaultRetry()
	for attempt := 1; attempt < 20; attempt++ {
		d := p.backoff(attempt, -1)
		if d <= 0 || d > p.MaxDelay {
			t.Fatalf("attempt %d: wait %s outside (0, %s]", attempt, d, p.MaxDelay)
		}
	}
	if d := p.backoff(1, time.Hour); d != p.MaxRetryAfter {
		t.Fatalf("Retry-After of an hour: wait %s, want the cap %s", d, p.MaxRetryAfter)
	}
	if got := parseRetryAfter(time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat), time.Now()); got < 85*time.Second || got > 90*time.Second {
		t.Fatalf("HTTP-date Retry-After: %s", got)
	}
}

func TestNoRetryWhereUnsafeOrUseless(t *testing.T) {
	var n int
	status := http.StatusBadRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	var waits []time.Duration
	c := New(srv.URL, "sgk_x", nil).WithRetry(recordingPolicy(&waits))
	ctx := context.Background()

	if _, err := c.Whoami(ctx); err == nil || n != 1 {
		t.Fatalf("400 is final: %d attempts, %v", n, err)
	}
	n, status = 0, http.StatusServiceUnavailable
	if _, _, err := c.CreateKey(ctx, "dev", api.CreateKeyRequest{Name: "x"}); err == nil || n != 1 {
		t.Fatalf("key creation is not idempotent and must not be retried: %d attempts", n)
	}
	n = 0
	pr, pw := io.Pipe()
	go func() { _, _ = pw.Write([]byte("abc")); pw.Close() }()
	if _, err := c.UploadBlob(ctx, "dev", v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}, pr, 3); err == nil || n != 1 {
		t.Fatalf("a body that cannot be re-read is sent once: %d attempts", n)
	}
	n = 0
	cancelled, cancel := context.WithCancel(ctx)
	c.retry.sleep = func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }
	if _, err := c.Whoami(cancelled); err == nil || n != 1 {
		t.Fatalf("a cancelled context stops retrying: %d attempts, %v", n, err)
	}
}

func TestConnectionRefusedIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	var waits []time.Duration
	c := New(url, "sgk_x", nil).WithRetry(recordingPolicy(&waits))
	if _, err := c.Whoami(context.Background()); err == nil {
		t.Fatal("want an error from a closed port")
	}
	if len(waits) != DefaultRetry().Attempts-1 {
		t.Fatalf("%d retries of a refused connection, want %d", len(waits), DefaultRetry().Attempts-1)
	}
}
