package api_test

import (
	"encoding/json"
	"testing"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/registry"
)

func TestRollbackRoundTrip(t *testing.T) {
	rollback := release
	rollback.Action, rollback.Source, rollback.Number, rollback.TriggeredBy = registry.ReleaseRollback, "", 4, "alertmanager:a1b2"
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"Release", roundTrip(registry.Release{ID: 4, Number: 3, Environment: "prod", Name: "fraud-detector", Version: "1.0.0",
			ManifestDigest: digest, Action: registry.ReleaseRollback, Source: "-", PreviousID: 3, Actor: "alertmanager", Reason: "ErrorRate",
			GateRunID: "gr_2", CreatedAt: at, TriggeredBy: "alertmanager:a1b2", Forced: true})},
		{"RollbackRequest", roundTrip(api.RollbackRequest{Name: "fraud-detector", Version: "1.0.0", Reason: "error rate", DryRun: true, Force: true})},
		{"RollbackResponse", roundTrip(api.RollbackResponse[api.GateReport]{Outcome: api.RollbackDone, Version: "1.0.0", Release: &rollback, Previous: &release,
			GateRun: &api.GateRunSummary{ID: "gr_2", PolicyDigest: "sha256:rollback", Passed: true}, Report: &report})},
		{"NotEligible", roundTrip(api.NotEligible{Name: "fraud-detector", Version: "9.9.9", Current: "1.1.0", Eligible: []string{"1.0.0"}})},
		{"ReleaseStatus", roundTrip(api.ReleaseStatus{Environment: "prod", At: at, Name: "fraud-detector", Releases: []registry.Release{rollback}})},
		{"HookResponse", roundTrip(api.HookResponse{Environment: "prod", Receiver: "stagegate", Alerts: []api.AlertOutcome{{Fingerprint: "a1b2"}}})},
		{"AlertOutcome", roundTrip(api.AlertOutcome{Fingerprint: "a1b2", AlertName: "ErrorRate", Status: "firing", Artifact: "fraud-detector",
			Outcome: "refused", Detail: "1 check(s) refused", Code: "gate_failed", Release: &rollback, GateRunID: "gr_2"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func TestRollbackWireNames(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"rollback request, default target", api.RollbackRequest{Name: "fraud-detector", Reason: "error rate"},
			`{"name":"fraud-detector","reason":"error rate"}`},
		{"rollback response, unchanged", api.RollbackResponse[api.GateReport]{Outcome: api.RollbackUnchanged, Version: "1.0.0"},
			`{"outcome":"unchanged","version":"1.0.0"}`},
		{"not eligible, never released", api.NotEligible{Name: "x", Eligible: []string{}},
			`{"name":"x","eligible":[]}`},
		{"release status", api.ReleaseStatus{Environment: "prod", At: at, Releases: []registry.Release{}},
			`{"environment":"prod","at":"2026-11-25T09:00:00Z","releases":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("JSON\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
