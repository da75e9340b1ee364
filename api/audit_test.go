package api_test

import (
	"encoding/json"
	"testing"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
)

func TestAuditRoundTrip(t *testing.T) {
	cp := audit.NewCheckpoint("prod", audit.Head{Seq: 3, Hash: "sha256:ab"}, at)
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"AuditCheckpoint", roundTrip(api.AuditCheckpoint{Checkpoint: cp, Payload: cp.Payload(), Signature: "MEUCIQ==", KeyID: "sha256:k"})},
		{"Checkpoint", roundTrip(cp)},
		{"Event with chain fields", roundTrip(audit.Event{ID: 7, Time: at, Environment: "prod", Actor: "ci", CredentialID: "key_1",
			Action: audit.ActionPublish, Target: "m@1.0.0", Name: "m", Version: "1.0.0", Outcome: audit.Denied, ErrorCode: "gate_failed",
			RequestID: "r1", Details: map[string]string{"k": "v"}, Seq: 2, PrevHash: "sha256:aa", Hash: "sha256:bb"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// TestAuditWireNames pins the JSON of the audit bodies scripts read.
func TestAuditWireNames(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"last page", api.AuditEventList{Environment: "dev", Events: []audit.Event{}}, `{"environment":"dev","events":[]}`},
		{"more pages", api.AuditEventList{Environment: "dev", Events: []audit.Event{}, Next: "42"}, `{"environment":"dev","events":[],"next":"42"}`},
		{"checkpoint", api.AuditCheckpoint{Checkpoint: audit.Checkpoint{Type: audit.CheckpointType, Environment: "dev", Count: 1, HeadHash: "sha256:ab", Time: at},
			Payload: []byte("{}"), Signature: "c2ln", KeyID: "sha256:k"},
			`{"checkpoint":{"type":"https://stagegate.dev/audit/checkpoint/v1","environment":"dev","count":1,"headHash":"sha256:ab","time":"2026-11-25T09:00:00Z"},` +
				`"payload":"e30=","signature":"c2ln","keyId":"sha256:k"}`},
		{"chained event", audit.Event{ID: 1, Time: at, Environment: "dev", Actor: "ci", Action: "artifact.publish", Target: "m@v1.0.0", Name: "m",
			Version: "1.0.0", Outcome: audit.Success, Seq: 1, Hash: "sha256:ab"},
			`{"id":1,"time":"2026-11-25T09:00:00Z","environment":"dev","actor":"ci","action":"artifact.publish","target":"m@v1.0.0",` +
				`"name":"m","version":"1.0.0","outcome":"success","seq":1,"hash":"sha256:ab"}`},
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
