package alertmanager_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/rollback/alertmanager"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	w, err := alertmanager.Parse(readFixture(t, "firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	a := w.Alerts[0]
	if w.Receiver != "stagegate-staging" || len(w.Alerts) != 3 || a.Status != alertmanager.Firing || a.Fingerprint != "a1b2c3d4e5f60718" ||
		a.Labels["stagegate_artifact"] != "model" || a.Annotations["summary"] == "" ||
		!a.StartsAt.Equal(time.Date(2026, 6, 1, 9, 10, 0, 123456789, time.UTC)) || !a.EndsAt.IsZero() ||
		w.CommonLabels["severity"] != "page" || w.GroupLabels["alertname"] != "FraudDetectorErrorRate" {
		t.Fatalf("parsed %+v", w)
	}
	many, _ := json.Marshal(map[string]any{"version": "4", "alerts": make([]map[string]any, alertmanager.MaxAlerts+1)})
	tests := []struct {
		name string
		data string
		code string
	}{
		{"resolved notification", string(readFixture(t, "resolved.json")), ""},
		{"unknown fields are ignored", `{"version":"4","alerts":[],"newField":{"x":1}}`, ""},
		{"version 3", `{"version":"3","alerts":[]}`, registry.CodeInvalidRequest.Name},
		{"no version", `{"alerts":[]}`, registry.CodeInvalidRequest.Name},
		{"not JSON", `version: 4`, registry.CodeInvalidRequest.Name},
		{"two documents", `{"version":"4"} {"version":"4"}`, registry.CodeInvalidRequest.Name},
		{"labels not strings", `{"version":"4","alerts":[{"labels":{"a":1}}]}`, registry.CodeInvalidRequest.Name},
		{"bad time", `{"version":"4","alerts":[{"startsAt":"yesterday"}]}`, registry.CodeInvalidRequest.Name},
		{"too many alerts", string(many), registry.CodeTooLarge.Name},
		{"too large", `{"version":"4","x":"` + strings.Repeat("a", alertmanager.MaxBytes) + `"}`, registry.CodeTooLarge.Name},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := alertmanager.Parse([]byte(tt.data))
			got := ""
			if err != nil {
				got = registry.AsError(err).Code
			}
			if got != tt.code {
				t.Fatalf("code %q (%v), want %q", got, err, tt.code)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"firing.json", "resolved.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"stagegate_artifact":"a/b"},"fingerprint":"\u0000"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := alertmanager.Parse(data)
		if err != nil {
			if k := registry.KindOf(err); k != registry.Invalid && k != registry.TooLarge {
				t.Fatalf("error of kind %v: %v", k, err)
			}
			return
		}
		if w.Version != "4" || len(w.Alerts) > alertmanager.MaxAlerts {
			t.Fatalf("accepted %+v", w)
		}
	})
}
