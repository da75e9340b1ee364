package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name     string
		args     []string
		code     int
		wantPath string
	}{
		{"base URL gets /healthz", []string{"--url", srv.URL}, exitOK, "/healthz"},
		{"explicit path", []string{"--url", srv.URL + "/healthz"}, exitOK, "/healthz"},
		{"not 200", []string{"--url", srv.URL + "/down"}, exitError, "/down"},
		{"nothing listening", []string{"--url", closed, "--timeout", "2s"}, exitError, ""},
		{"not a URL", []string{"--url", "127.0.0.1:8080"}, exitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			paths = nil
			mu.Unlock()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"healthcheck"}, tt.args...), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.code, stdout.String(), stderr.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.wantPath != "" && (len(paths) != 1 || paths[0] != tt.wantPath) {
				t.Errorf("probed %v, want %s", paths, tt.wantPath)
			}
			if code != exitOK && !strings.Contains(stderr.String(), "stagegate:") {
				t.Errorf("a failure says nothing on stderr: %q", stderr.String())
			}
		})
	}
}
