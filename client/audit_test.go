package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/client"
)

// TestExportAuditBrokenStream: an export the server cuts off after some
// events (it aborts the response, as the service does when the database
// fails mid-stream) is an error, not a shorter export.
func TestExportAuditBrokenStream(t *testing.T) {
	line := `{"id":1,"time":"2026-01-01T00:00:00Z","environment":"dev","actor":"a","action":"x","outcome":"success","seq":1}` + "\n"
	for _, tc := range []struct {
		name    string
		cut     bool
		wantErr string
	}{
		{"complete", false, ""},
		{"cut off", true, "broke off after 2 events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/jsonl")
				_, _ = w.Write([]byte(line + line))
				w.(http.Flusher).Flush()
				if tc.cut {
					panic(http.ErrAbortHandler)
				}
			}))
			defer srv.Close()
			var got []audit.Event
			err := client.New(srv.URL, "t", nil).ExportAudit(context.Background(), "dev", nil, func(ev audit.Event) error {
				got = append(got, ev)
				return nil
			})
			switch {
			case tc.wantErr == "" && (err != nil || len(got) != 2):
				t.Fatalf("export = %d events, %v", len(got), err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("export of a cut stream = %d events, %v; want an error containing %q", len(got), err, tc.wantErr)
			}
		})
	}
}
