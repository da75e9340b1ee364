package api

import "github.com/stagegate/stagegate/audit"

// AuditEventList answers GET /v1/audit and /v1/environments/{env}/audit,
// newest first.
type AuditEventList struct {
	Environment string        `json:"environment"`
	Events      []audit.Event `json:"events"`
	// Next, when set, is the cursor of the following (older) page: pass it
	// as before=. It is absent on the last page. Paging this way neither
	// skips nor repeats an event while others are appended.
	Next string `json:"next,omitempty"`
}

// AuditExportMediaType is the body of GET
// /v1/environments/{env}/audit/export: JSON Lines, one audit.Event per
// line, oldest first. A stream that breaks off (a server fault after the
// first byte) ends without its final chunk, which every HTTP client
// reports as a failed transfer, never as a complete but shorter export.
const AuditExportMediaType = "application/jsonl"

// AuditCheckpoint answers GET /v1/environments/{env}/audit/checkpoint: the
// head of the environment's audit chain, signed with the environment's
// key. Payload holds the exact signed bytes (base64 in JSON) and Signature
// what `cosign sign-blob` would write, so that writing them to
// checkpoint.json and checkpoint.json.sig lets `cosign verify-blob --key
// ENV.pub --signature checkpoint.json.sig --insecure-ignore-tlog=true
// checkpoint.json` check them. Checkpoint is Payload decoded.
type AuditCheckpoint struct {
	Checkpoint audit.Checkpoint `json:"checkpoint"`
	Payload    []byte           `json:"payload"`
	Signature  string           `json:"signature"`
	KeyID      string           `json:"keyId"`
}
