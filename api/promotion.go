package api

import (
	"encoding/json"
	"time"

	"github.com/stagegate/stagegate/registry"
)

// PromoteRequest is the body of POST /v1/environments/{target}/promotions.
// From defaults to the environment before the target.
type PromoteRequest struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	From    string `json:"from,omitempty"`
	Reason  string `json:"reason,omitempty"`
	DryRun  bool   `json:"dryRun,omitempty"`
}

// PromoteResponse answers a promotion the gates did not refuse (a refusal
// is an error whose details are a GateFailure).
//
// R is the Go type of the gate report. It is a parameter because the two
// sides hold the same JSON differently: the server fills in the engine's
// own report (gates.Report), which this package may not import, and the
// client decodes into GateReport. Neither side has to convert.
type PromoteResponse[R any] struct {
	Passed  bool              `json:"passed"`
	DryRun  bool              `json:"dryRun"`
	Created bool              `json:"created"`
	Release *registry.Release `json:"release,omitempty"`
	GateRun *GateRunSummary   `json:"gateRun,omitempty"`
	Report  *R                `json:"report,omitempty"`
}

// GateRunSummary identifies the stored gate run behind a promotion; the
// full run is at GET /v1/environments/{env}/gate-runs/{id}.
type GateRunSummary struct {
	ID           string `json:"id"`
	PolicyDigest string `json:"policyDigest"`
	Passed       bool   `json:"passed"`
}

// GateReport is a gate run's report as it travels on the wire, in a
// PromoteResponse and in a GateFailure. It mirrors the JSON of the gates
// engine's report.
type GateReport struct {
	PolicyDigest string        `json:"policyDigest"`
	Environment  string        `json:"environment"`
	Passed       bool          `json:"passed"`
	Results      []CheckResult `json:"results"`
	StartedAt    time.Time     `json:"startedAt"`
	Duration     time.Duration `json:"duration"`
}

// CheckResult is one check's outcome in a GateReport.
type CheckResult struct {
	Check string `json:"check"`
	// Family is validation, tests, security or process.
	Family string `json:"family"`
	// Status is passed, failed, errored or skipped. Failed means the
	// artifact does not meet the policy; errored means the check could not
	// decide.
	Status string `json:"status"`
	// Required is false for advisory checks, which never block.
	Required bool   `json:"required"`
	Reason   string `json:"reason"`
	// Details is check-specific; it stays raw so that a caller decodes only
	// the checks it knows.
	Details  json.RawMessage `json:"details,omitempty"`
	Duration time.Duration   `json:"duration"`
}

// GateFailure is the details of a gate_failed error: the gate run that
// refused the promotion and its report.
type GateFailure struct {
	GateRunID string     `json:"gateRunId"`
	Report    GateReport `json:"report"`
}

// ApprovalRequest is the optional body of POST
// …/artifacts/{name}/-/versions/{version}/approvals; the answer is the
// registry.Approval recorded.
type ApprovalRequest struct {
	Comment string `json:"comment,omitempty"`
}

// EvidenceResponse answers PUT …/versions/{version}/evidence/{type}, whose
// body is the raw document; Created is false when the same document was
// already attached.
type EvidenceResponse struct {
	Created  bool              `json:"created"`
	Evidence registry.Evidence `json:"evidence"`
}

// EvidenceList answers GET …/versions/{version}/evidence.
type EvidenceList struct {
	Evidence []registry.Evidence `json:"evidence"`
}

// ReleaseList answers GET …/artifacts/{name}/-/releases?limit=&before=,
// newest first. NextBefore, when set, is the before= of the next page.
type ReleaseList struct {
	Environment string             `json:"environment"`
	Name        string             `json:"name"`
	Releases    []registry.Release `json:"releases"`
	NextBefore  int64              `json:"nextBefore,omitempty"`
}
