package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestPushAsksOnlyForLargeFiles: a small file goes inside the publish
// request (against a server that does not know inline contents, it is
// uploaded and the publish sent again), a middle-sized one is uploaded
// straight away (the server answers a repeat with created=false), a large
// one only after a HEAD says the server lacks it.
func TestPushAsksOnlyForLargeFiles(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		stored    bool // the server already has the blob
		oldServer bool // the server refuses the contents field
		want      []string
	}{
		{"small", 4 << 10, false, false, []string{"PUT version+contents"}},
		{"small, old server", 4 << 10, false, true, []string{"PUT version+contents", "PUT blob", "PUT version"}},
		{"middle new", inlineFile + 1, false, false, []string{"PUT blob", "PUT version"}},
		{"middle stored", inlineFile + 1, true, false, []string{"PUT blob", "PUT version"}},
		{"large new", smallUpload + 1, false, false, []string{"HEAD blob", "PUT blob", "PUT version"}},
		{"large stored", smallUpload + 1, true, false, []string{"HEAD blob", "PUT version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu  sync.Mutex
				got []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				what := "version"
				if strings.Contains(r.URL.Path, "/blobs/") {
					what = "blob"
				}
				body, _ := io.ReadAll(r.Body)
				if what == "version" && strings.Contains(string(body), `"contents"`) {
					what += "+contents"
				}
				mu.Lock()
				got = append(got, r.Method+" "+what)
				mu.Unlock()
				switch {
				case what == "version+contents" && tt.oldServer:
					w.WriteHeader(http.StatusBadRequest)
					io.WriteString(w, `{"error":{"code":"invalid_request","message":"invalid JSON body: json: unknown field \"contents\""}}`)
				case r.Method == http.MethodHead && !tt.stored:
					w.WriteHeader(http.StatusNotFound)
				case r.Method == http.MethodHead:
					w.WriteHeader(http.StatusOK)
				case what == "blob":
					w.WriteHeader(http.StatusCreated)
					fmt.Fprintf(w, `{"created":%t}`, !tt.stored)
				default:
					w.WriteHeader(http.StatusCreated)
					io.WriteString(w, `{"created":true}`)
				}
			}))
			defer srv.Close()
			path := filepath.Join(t.TempDir(), "f.bin")
			if err := os.WriteFile(path, make([]byte, tt.size), 0o644); err != nil {
				t.Fatal(err)
			}
			files, err := CollectFiles([]string{path})
			if err != nil {
				t.Fatal(err)
			}
			var uploaded []bool
			_, err = New(srv.URL, "token", nil).Push(context.Background(), "dev", "a", "1.0.0", files, PushOptions{
				Kind:     "generic",
				Progress: func(_ LocalFile, up bool) { uploaded = append(uploaded, up) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("requests %q, want %q", got, tt.want)
			}
			if len(uploaded) != 1 || uploaded[0] == tt.stored {
				t.Errorf("progress reported uploaded=%v, want [%v]", uploaded, !tt.stored)
			}
		})
	}
}
