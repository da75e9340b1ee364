// Package metrics is stagegate's Prometheus instrumentation: the metric
// families an operator scrapes from /metrics, in a registry each server
// builds for itself (no global default registry, nothing registered at init).
//
// Labels are bounded by construction: route templates (never raw paths),
// configured environment names, audit action names and error codes declared
// in code, gate check names from the validated policies, blob operation
// names. Artifact names, versions, key names, actors and tokens are never
// labels: they are unbounded, and some are personal or secret.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/registry"
)

// Names of the metric families stagegate defines (the Go runtime and
// process collectors add go_* and process_*). Dashboards and alerts are
// written against these; renaming one breaks them.
const (
	RequestDuration   = "stagegate_http_request_duration_seconds"
	Actions           = "stagegate_actions_total"
	GateCheckDuration = "stagegate_gate_check_duration_seconds"
	TransferBytes     = "stagegate_transfer_bytes_total"
	BlobOpDuration    = "stagegate_blob_operation_duration_seconds"
)

// Names lists the families above.
func Names() []string {
	return []string{RequestDuration, Actions, GateCheckDuration, TransferBytes, BlobOpDuration}
}

// Unmatched is the route label of a request no route matched, so probes of
// random paths share one series.
const Unmatched = "unmatched"

// Transfer directions.
const (
	Upload   = "upload"
	Download = "download"
)

// Blob operation results: the sentinels callers act on get their own value,
// everything else is "error".
const (
	ResultOK       = "ok"
	ResultNotFound = "not_found"
	ResultExists   = "exists"
	ResultCanceled = "canceled"
	ResultError    = "error"
)

// Metrics holds stagegate's collectors and the registry they are in.
type Metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.HistogramVec
	actions   *prometheus.CounterVec
	gates     *prometheus.HistogramVec
	transfers *prometheus.CounterVec
	blobOps   *prometheus.HistogramVec
}

// durationBuckets reach from a cached HEAD to a multi-GiB upload: request
// durations span six orders of magnitude here, and the default buckets stop
// at 10 s.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

// checkBuckets fit gate checks: most take microseconds to milliseconds;
// digest integrity re-hashes whole models and takes seconds to minutes.
var checkBuckets = []float64{.0001, .001, .01, .1, .5, 1, 5, 15, 60, 300}

// New builds a registry holding stagegate's families and the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    RequestDuration,
			Help:    "HTTP requests by route template, method and status: time from the first byte read to the last byte written.",
			Buckets: durationBuckets,
		}, []string{"route", "method", "status"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: Actions,
			Help: "Audited actions (publish, promote, approve, rollback, key management, evidence, refused authentication) by environment, action, outcome (success, denied, failed) and error code (empty on success). Environment is empty for refusals no configured environment owns.",
		}, []string{"environment", "action", "outcome", "code"}),
		gates: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    GateCheckDuration,
			Help:    "Gate checks run by promotions (dry runs included) by target environment, check and result (passed, failed, errored, skipped).",
			Buckets: checkBuckets,
		}, []string{"environment", "check", "result"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: TransferBytes,
			Help: "Body bytes of authenticated requests bound to an environment: upload (request bodies: blobs, publishes, evidence) and download (response bodies: files, manifests, listings).",
		}, []string{"environment", "direction"}),
		blobOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: BlobOpDuration,
			Help: "Blob store operations by environment, driver, operation (put, get, stat, copy, ping) and result. A put lasts as long as its body streams; a get measures opening the object, not reading it.",
			// Puts stream whole uploads, so the upper buckets matter.
			Buckets: durationBuckets,
		}, []string{"environment", "driver", "operation", "result"}),
	}
	m.registry.MustRegister(
		m.requests, m.actions, m.gates, m.transfers, m.blobOps,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is where every family is registered, for tests and for callers
// adding their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		Registry: m.registry,
		// One failing collector should not hide every other series.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// ObserveRequest records one HTTP request. route is the router's template
// ("" when none matched); method is folded to the standard methods.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	if route == "" {
		route = Unmatched
	}
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Observe(d.Seconds())
}

// methodLabel bounds the method label: any token is a valid HTTP method, so
// a client could otherwise mint series at will.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// ObserveAction counts one audited action. env is a configured
// environment's name or "" (unbound refusals); code is the error code of a
// refusal, "" on success.
func (m *Metrics) ObserveAction(env, action string, outcome audit.Outcome, code string) {
	m.actions.WithLabelValues(env, action, string(outcome), code).Inc()
}

// ObserveGates records every check of a gate report for target env.
func (m *Metrics) ObserveGates(env string, r gates.Report) {
	for _, res := range r.Results {
		m.gates.WithLabelValues(env, res.Check, string(res.Status)).Observe(res.Duration.Seconds())
	}
}

// ObserveTransfer adds body bytes moved for env.
func (m *Metrics) ObserveTransfer(env string, uploaded, downloaded int64) {
	if uploaded > 0 {
		m.transfers.WithLabelValues(env, Upload).Add(float64(uploaded))
	}
	if downloaded > 0 {
		m.transfers.WithLabelValues(env, Download).Add(float64(downloaded))
	}
}

// BlobObserver returns the observer of one environment's blob driver, for
// blob.Observed.
func (m *Metrics) BlobObserver(env, driver string) func(op string, d time.Duration, err error) {
	return func(op string, d time.Duration, err error) {
		m.blobOps.WithLabelValues(env, driver, op, blobResult(err)).Observe(d.Seconds())
	}
}

func blobResult(err error) string {
	switch {
	case err == nil:
		return ResultOK
	case errors.Is(err, registry.ErrObjectNotFound):
		return ResultNotFound
	case errors.Is(err, registry.ErrObjectExists):
		return ResultExists
	case errors.Is(err, context.Canceled):
		return ResultCanceled
	}
	return ResultError
}
