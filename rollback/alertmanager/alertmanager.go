// Package alertmanager reads Prometheus Alertmanager's webhook
// notifications (payload version 4, as documented at
// https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
// It is apart from package rollback, which acts on the alerts, so that the
// parser of this untrusted input is fuzzed in a small test binary.
package alertmanager

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"time"
	"unicode/utf8"

	"github.com/stagegate/stagegate/registry"
)

// Limits of a notification.
const (
	MaxBytes  = 4 << 20
	MaxAlerts = 1000
)

// Webhook is one notification. Fields stagegate does not use are decoded
// where cheap and otherwise ignored, so that a newer Alertmanager that adds
// fields still works.
type Webhook struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a notification.
type Alert struct {
	Status       string            `json:"status"` // Firing or Resolved
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"` // zero (0001-01-01) while firing
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Alert statuses.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Parse decodes a notification. It accepts payload version 4 only, at most
// MaxBytes and MaxAlerts alerts: anything else is an invalid_request (or
// too_large) error. Unknown fields are ignored.
func Parse(data []byte) (Webhook, error) {
	if len(data) > MaxBytes {
		return Webhook{}, registry.CodeTooLarge.Errorf("the notification is over %d bytes", MaxBytes)
	}
	var w Webhook
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&w); err != nil {
		return Webhook{}, registry.CodeInvalidRequest.Errorf("not an Alertmanager notification: %s", clip(err.Error(), 200))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Webhook{}, registry.CodeInvalidRequest.Errorf("not an Alertmanager notification: trailing data")
	}
	switch {
	case w.Version != "4":
		return Webhook{}, registry.CodeInvalidRequest.Errorf("Alertmanager payload version %q is not supported (want \"4\")", clip(w.Version, 20))
	case len(w.Alerts) > MaxAlerts:
		return Webhook{}, registry.CodeTooLarge.Errorf("%d alerts in one notification, at most %d", len(w.Alerts), MaxAlerts)
	}
	return w, nil
}

// clip bounds untrusted text echoed back, cutting on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
