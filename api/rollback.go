package api

import (
	"time"

	"github.com/stagegate/stagegate/registry"
)

// RollbackRequest is the body of POST /v1/environments/{env}/rollbacks.
type RollbackRequest struct {
	Name string `json:"name"`
	// Version is the version to make current again; empty means the
	// version of the release before the current one.
	Version string `json:"version,omitempty"`
	// Reason is required; it is recorded in the release and the audit trail.
	Reason string `json:"reason"`
	DryRun bool   `json:"dryRun,omitempty"`
	// Force lifts the environment's freeze windows; admins only. The gate
	// run still reports them, as advisory, and the audit event says forced.
	Force bool `json:"force,omitempty"`
}

// Rollback outcomes (RollbackResponse.Outcome).
const (
	RollbackDone      = "rolled-back" // a release was appended (201)
	RollbackUnchanged = "unchanged"   // the version was current already (200)
	RollbackDryRun    = "dry-run"     // the gates passed; nothing changed (200)
)

// RollbackResponse answers a rollback the gates did not refuse (a refusal
// is a gate_failed error whose details are a GateFailure). R is the Go type
// of the gate report, as in PromoteResponse.
type RollbackResponse[R any] struct {
	Outcome string `json:"outcome"`
	// Version is the version rolled back to (for a dry run, that would be).
	Version string `json:"version"`
	// Release is the release current now: the new one, or the one that
	// already served the version. Absent for a dry run.
	Release *registry.Release `json:"release,omitempty"`
	// Previous is the release that was current when the rollback was
	// decided.
	Previous *registry.Release `json:"previous,omitempty"`
	GateRun  *GateRunSummary   `json:"gateRun,omitempty"`
	Report   *R                `json:"report,omitempty"`
}

// NotEligible is the details of a not_eligible error: the versions a
// rollback of Name may name.
type NotEligible struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Current is the version served now ("" when the name was never
	// released); Eligible the other versions released before, newest
	// release first.
	Current  string   `json:"current,omitempty"`
	Eligible []string `json:"eligible"`
}

// ReleaseStatus answers GET /v1/environments/{env}/releases?at=&name=: for
// each name (or the one asked for), the release current at At. Names first
// released after At are absent. At is the instant answered for: the one
// asked, or the server's now when none was given or it lies in the future.
type ReleaseStatus struct {
	Environment string             `json:"environment"`
	At          time.Time          `json:"at"`
	Name        string             `json:"name,omitempty"`
	Releases    []registry.Release `json:"releases"`
}

// HookResponse answers POST /v1/environments/{env}/hooks/alertmanager: what
// each alert of the notification did, in its order.
type HookResponse struct {
	Environment string         `json:"environment"`
	Receiver    string         `json:"receiver,omitempty"`
	Alerts      []AlertOutcome `json:"alerts"`
}

// AlertOutcome is what one alert did. Outcome is rolled-back,
// already-rolled-back, skipped (a guard held; Detail says which), refused
// (Code says why; a gate refusal names its GateRunID) or ignored (resolved,
// or no stagegate_artifact label).
type AlertOutcome struct {
	Fingerprint string            `json:"fingerprint"`
	AlertName   string            `json:"alertname,omitempty"`
	Status      string            `json:"status"`
	Artifact    string            `json:"artifact,omitempty"`
	Outcome     string            `json:"outcome"`
	Detail      string            `json:"detail"`
	Code        string            `json:"code,omitempty"`
	Release     *registry.Release `json:"release,omitempty"`
	GateRunID   string            `json:"gateRunId,omitempty"`
}
