package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/metrics"
	"github.com/stagegate/stagegate/registry"
)

func TestRequestLabels(t *testing.T) {
	tests := []struct {
		route, method string
		wantRoute     string
		wantMethod    string
	}{
		{"/v1/environments/:env/artifacts/*rest", "PUT", "/v1/environments/:env/artifacts/*rest", "PUT"},
		{"", "GET", metrics.Unmatched, "GET"},
		{"/healthz", "BREW", "/healthz", "other"},
		{"/healthz", "get", "/healthz", "other"}, // methods are case-sensitive tokens
	}
	for _, tt := range tests {
		m := metrics.New()
		m.ObserveRequest(tt.route, tt.method, 200, 10*time.Millisecond)
		fams, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != metrics.RequestDuration {
				continue
			}
			if len(f.GetMetric()) != 1 {
				t.Fatalf("%s %s: %d series, want 1", tt.method, tt.route, len(f.GetMetric()))
			}
			labels := map[string]string{}
			for _, l := range f.GetMetric()[0].GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] != tt.wantRoute || labels["method"] != tt.wantMethod || labels["status"] != "200" {
				t.Errorf("%s %s: labels %v", tt.method, tt.route, labels)
			}
		}
	}
}

func TestBlobResults(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, metrics.ResultOK},
		{fmt.Errorf("stat: %w", registry.ErrObjectNotFound), metrics.ResultNotFound},
		{fmt.Errorf("put: %w", registry.ErrObjectExists), metrics.ResultExists},
		{context.Canceled, metrics.ResultCanceled},
		{errors.New("connection reset"), metrics.ResultError},
	}
	m := metrics.New()
	for _, tt := range tests {
		m.BlobObserver("dev", "minio")("put", time.Millisecond, tt.err)
	}
	for _, tt := range tests {
		want := fmt.Sprintf(`environment="dev",operation="put",result="%s"`, tt.want)
		if !strings.Contains(exposition(t, m), want) {
			t.Errorf("no series with %s", want)
		}
	}
}

func TestActionsGatesTransfers(t *testing.T) {
	m := metrics.New()
	m.ObserveAction("staging", "artifact.promote", audit.Denied, "gate_failed")
	m.ObserveAction("staging", "artifact.promote", audit.Success, "")
	m.ObserveGates("staging", gates.Report{Results: []gates.Result{
		{Check: "json-schema", Status: gates.Failed, Duration: time.Millisecond},
		{Check: "promotion-order", Status: gates.Passed},
	}})
	m.ObserveTransfer("dev", 100, 0)
	m.ObserveTransfer("dev", 0, 0) // nothing moved: no series is created for it
	out := exposition(t, m)
	for _, want := range []string{
		`stagegate_actions_total{action="artifact.promote",code="gate_failed",environment="staging",outcome="denied"} 1`,
		`stagegate_actions_total{action="artifact.promote",code="",environment="staging",outcome="success"} 1`,
		`stagegate_gate_check_duration_seconds_count{check="json-schema",environment="staging",result="failed"} 1`,
		`stagegate_gate_check_duration_seconds_count{check="promotion-order",environment="staging",result="passed"} 1`,
		`stagegate_transfer_bytes_total{direction="upload",environment="dev"} 100`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(out, `direction="download"`) {
		t.Error("a zero download created a series")
	}
}

// TestOwnRegistry: two instances do not share state, so two servers in one
// process (the tests) count separately, and nothing goes to the global
// default registry.
func TestOwnRegistry(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.ObserveAction("dev", "artifact.publish", audit.Success, "")
	if strings.Contains(exposition(t, b), metrics.Actions+"{") {
		t.Error("an observation on one instance shows on another")
	}
}

func exposition(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics = %d", rec.Code)
	}
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

// TestNames: Names lists exactly the stagegate_* families, so dashboards and
// alerts checked against it (deploy/grafana) see every one.
func TestNames(t *testing.T) {
	m := metrics.New()
	m.ObserveRequest("/healthz", "GET", 200, time.Millisecond)
	m.ObserveAction("dev", "artifact.publish", audit.Success, "")
	m.ObserveGates("staging", gates.Report{Results: []gates.Result{{Check: "promotion-order", Status: gates.Passed}}})
	m.ObserveTransfer("dev", 1, 1)
	m.BlobObserver("dev", "filesystem")("get", time.Millisecond, nil)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "stagegate_") {
			got = append(got, f.GetName())
		}
	}
	want := metrics.Names()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("stagegate families %v, Names() %v", got, want)
	}
}
