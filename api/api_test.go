package api_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

var (
	at     = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	digest = registry.DigestOf([]byte("weights"))
	file   = registry.File{Path: "model/w.bin", Digest: digest, Size: 7, MediaType: "application/octet-stream"}
	record = registry.VersionRecord{Environment: "dev", Name: "fraud-detector", Version: "1.0.0", OriginalVersion: "v1.0.0",
		Kind: "model", ManifestDigest: digest, ManifestSize: 512, Files: []registry.File{file}, CreatedAt: at, CreatedBy: "ci"}
	release = registry.Release{ID: 3, Environment: "staging", Name: "fraud-detector", Version: "1.0.0", ManifestDigest: digest,
		Action: registry.ReleasePromotion, Source: "dev", PreviousID: 2, Actor: "promoter", Reason: "green", GateRunID: "gr_1", CreatedAt: at}
	evidence = registry.Evidence{Environment: "dev", Name: "fraud-detector", Version: "1.0.0", ManifestDigest: digest,
		Type: registry.EvidenceJUnit, Digest: digest, Size: 10, MediaType: "application/xml", CreatedAt: at, CreatedBy: "ci"}
	report = api.GateReport{PolicyDigest: "sha256:policy", Environment: "staging", Passed: true, StartedAt: at, Duration: time.Second,
		Results: []api.CheckResult{{Check: "soak-time", Family: "process", Status: "passed", Required: true, Reason: "soaked 25h",
			Details: json.RawMessage(`{"soaked":"25h"}`), Duration: time.Millisecond}}}
	key = api.Key{ID: "key_1", Name: "ci", Environment: "dev", Role: "publisher", Owner: "ci@example.com", CreatedAt: at,
		CreatedBy: "admin", CreatedByOwner: "alice@example.com", RevokedAt: &at}
)

// TestRoundTrip encodes every body with each field set and decodes it back,
// so a field that does not survive JSON (tagged "-", or of a type that
// cannot be restored from its encoding) is caught. The names themselves are
// pinned by TestWireNames.
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"PublishRequest", roundTrip(api.PublishRequest{Kind: "model", Files: []registry.File{file}, Labels: map[string]string{"team": "risk"},
			SourceCommit: "abc123", CISignatures: []registry.CISignature{{Subject: "manifest", Signature: "MEUCIQ=="}},
			Contents: map[string][]byte{"model/w.bin": []byte("weights")}})},
		{"PublishResponse", roundTrip(api.PublishResponse{Created: true, Version: record})},
		{"BlobUploadResponse", roundTrip(api.BlobUploadResponse{Digest: digest, Created: true})},
		{"ArtifactList", roundTrip(api.ArtifactList{Environment: "dev", Artifacts: []registry.ArtifactSummary{
			{Name: "fraud-detector", Kind: "model", VersionCount: 2, LastPublished: at}}})},
		{"VersionList", roundTrip(api.VersionList{Environment: "dev", Name: "fraud-detector", Versions: []registry.VersionRecord{record}})},
		{"AuditEventList", roundTrip(api.AuditEventList{Environment: "dev", Events: []audit.Event{{ID: 1, Time: at, Environment: "dev",
			Actor: "ci", Action: audit.ActionPublish, Target: "fraud-detector@1.0.0", Outcome: audit.Success}}, Next: "1"})},
		{"EnvironmentList", roundTrip(api.EnvironmentList{Environments: []api.EnvironmentSummary{{Name: "dev", Position: 1, AcceptsPublish: true}}})},
		{"EnvironmentSummary", roundTrip(api.EnvironmentSummary{Name: "prod", Position: 2, AcceptsPublish: true})},
		{"Whoami", roundTrip(api.Whoami{Environment: "dev", Role: "admin", Actor: "bootstrap", CredentialID: "key_1"})},
		{"PromoteRequest", roundTrip(api.PromoteRequest{Name: "fraud-detector", Version: "1.0.0", From: "dev", Reason: "green", DryRun: true})},
		{"PromoteResponse", roundTrip(api.PromoteResponse[api.GateReport]{Passed: true, DryRun: true, Created: true, Release: &release,
			GateRun: &api.GateRunSummary{ID: "gr_1", PolicyDigest: "sha256:policy", Passed: true}, Report: &report})},
		{"GateRunSummary", roundTrip(api.GateRunSummary{ID: "gr_1", PolicyDigest: "sha256:policy", Passed: true})},
		{"GateReport", roundTrip(report)},
		{"CheckResult", roundTrip(report.Results[0])},
		{"GateFailure", roundTrip(api.GateFailure{GateRunID: "gr_1", Report: report})},
		{"ApprovalRequest", roundTrip(api.ApprovalRequest{Comment: "looks good"})},
		{"EvidenceResponse", roundTrip(api.EvidenceResponse{Created: true, Evidence: evidence})},
		{"EvidenceList", roundTrip(api.EvidenceList{Evidence: []registry.Evidence{evidence}})},
		{"ReleaseList", roundTrip(api.ReleaseList{Environment: "staging", Name: "fraud-detector", Releases: []registry.Release{release}, NextBefore: 3})},
		{"CreateKeyRequest", roundTrip(api.CreateKeyRequest{Name: "ci", Role: "publisher", Owner: "ci@example.com"})},
		{"CreateKeyResponse", roundTrip(api.CreateKeyResponse{Key: key, Token: "sg_secret"})},
		{"Key", roundTrip(key)},
		{"KeyList", roundTrip(api.KeyList{Environment: "dev", Keys: []api.Key{key}})},
		// Details is any: a decoded object comes back as a map.
		{"ErrorBody", roundTrip(api.ErrorBody{Error: api.ErrorDetail{Code: "gate_failed", Message: "1 check(s) refused",
			Details: map[string]any{"gateRunId": "gr_1"}}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func roundTrip[T any](in T) func(t *testing.T) {
	return func(t *testing.T) {
		t.Helper()
		v := reflect.ValueOf(in)
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Fatalf("fixture leaves %s zero, so its round trip proves nothing", v.Type().Field(i).Name)
			}
		}
		data, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out T
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("decoding %s: %v", data, err)
		}
		if diff := cmp.Diff(in, out); diff != "" {
			t.Errorf("round trip through %s (-in +out):\n%s", data, diff)
		}
	}
}

// TestWireNames pins the exact JSON of the bodies clients in other languages
// and CI scripts depend on.
func TestWireNames(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{
			name: "publish request",
			in: api.PublishRequest{Kind: "model", Files: []registry.File{file}, Labels: map[string]string{"team": "risk"},
				SourceCommit: "abc123", CISignatures: []registry.CISignature{{Subject: "manifest", Signature: "sig"}},
				Contents: map[string][]byte{"model/w.bin": []byte("weights")}},
			want: `{"kind":"model","files":[{"path":"model/w.bin","digest":"` + digest.String() + `","size":7,"mediaType":"application/octet-stream"}],` +
				`"labels":{"team":"risk"},"sourceCommit":"abc123","ciSignatures":[{"subject":"manifest","signature":"sig"}],` +
				`"contents":{"model/w.bin":"d2VpZ2h0cw=="}}`,
		},
		{
			name: "publish request, optional fields left out",
			in:   api.PublishRequest{Kind: "model"},
			want: `{"kind":"model","files":null}`,
		},
		{
			name: "promote response",
			in: api.PromoteResponse[api.GateReport]{Passed: true, Created: true,
				GateRun: &api.GateRunSummary{ID: "gr_1", PolicyDigest: "sha256:p", Passed: true},
				Report: &api.GateReport{PolicyDigest: "sha256:p", Environment: "staging", Passed: true, StartedAt: at, Duration: 2,
					Results: []api.CheckResult{{Check: "c", Family: "tests", Status: "failed", Reason: "r", Duration: 1}}}},
			want: `{"passed":true,"dryRun":false,"created":true,"gateRun":{"id":"gr_1","policyDigest":"sha256:p","passed":true},` +
				`"report":{"policyDigest":"sha256:p","environment":"staging","passed":true,` +
				`"results":[{"check":"c","family":"tests","status":"failed","required":false,"reason":"r","duration":1}],` +
				`"startedAt":"2026-11-25T09:00:00Z","duration":2}}`,
		},
		{
			name: "promote response, nothing optional",
			in:   api.PromoteResponse[api.GateReport]{Passed: true},
			want: `{"passed":true,"dryRun":false,"created":false}`,
		},
		{
			name: "error body",
			in:   api.ErrorBody{Error: api.ErrorDetail{Code: "gate_failed", Message: "refused", Details: map[string]string{"gateRunId": "gr_1"}}},
			want: `{"error":{"code":"gate_failed","message":"refused","details":{"gateRunId":"gr_1"}}}`,
		},
		{
			name: "error body without details",
			in:   api.ErrorBody{Error: api.ErrorDetail{Code: "not_found", Message: "no such route"}},
			want: `{"error":{"code":"not_found","message":"no such route"}}`,
		},
		{
			name: "key, not revoked",
			in:   api.Key{ID: "key_1", Name: "ci", Environment: "dev", Role: "reader", CreatedAt: at, CreatedBy: "admin"},
			want: `{"id":"key_1","name":"ci","environment":"dev","role":"reader","createdAt":"2026-11-25T09:00:00Z","createdBy":"admin"}`,
		},
		{
			name: "key with owner",
			in:   api.Key{ID: "key_1", Name: "bob", Environment: "prod", Role: "approver", Owner: "bob@example.com", CreatedAt: at, CreatedBy: "alice-admin", CreatedByOwner: "alice@example.com"},
			want: `{"id":"key_1","name":"bob","environment":"prod","role":"approver","owner":"bob@example.com","createdAt":"2026-11-25T09:00:00Z","createdBy":"alice-admin","createdByOwner":"alice@example.com"}`,
		},
		{
			name: "approval request without comment",
			in:   api.ApprovalRequest{},
			want: `{}`,
		},
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

// TestErrorDetailsRaw checks the decoding the Go client relies on: with
// Details pointing at a RawMessage, the details arrive untouched.
func TestErrorDetailsRaw(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"object", `{"error":{"code":"gate_failed","message":"m","details":{"gateRunId":"gr_1","report":{"passed":false}}}}`,
			`{"gateRunId":"gr_1","report":{"passed":false}}`},
		{"absent", `{"error":{"code":"not_found","message":"m"}}`, ``},
		{"null", `{"error":{"code":"not_found","message":"m","details":null}}`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw json.RawMessage
			body := api.ErrorBody{Error: api.ErrorDetail{Details: &raw}}
			if err := json.Unmarshal([]byte(tt.body), &body); err != nil {
				t.Fatal(err)
			}
			if string(raw) != tt.want {
				t.Errorf("details = %q, want %q", raw, tt.want)
			}
		})
	}
	var gf api.GateFailure
	var raw json.RawMessage
	body := api.ErrorBody{Error: api.ErrorDetail{Details: &raw}}
	if err := json.Unmarshal([]byte(tests[0].body), &body); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &gf); err != nil || gf.GateRunID != "gr_1" {
		t.Errorf("gate failure = %+v, %v", gf, err)
	}
}
