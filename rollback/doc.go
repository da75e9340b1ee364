// Package rollback makes an earlier release of a name current again in one
// environment by appending a new release, never by deleting one
// (DESIGN.md §4), and answers what the environment served at any instant.
//
// A rollback is the way out of a bad release, so it runs a short, fixed
// gate set (gates.RollbackPolicy) instead of the environment's promotion
// policy: the target's bytes still hash to their digests in the
// environment's bucket, the environment's signature over its manifest
// verifies with the current or a rotated key, and the environment's freeze
// windows hold unless an admin forces past them. Only versions released in
// the environment before are eligible.
//
// Like a promotion, it writes what is immutable first — the gate run, then
// a DSSE attestation of the gate results signed by the environment's key,
// create-once under registry.RollbackAttestationKey — and then one metadata
// transaction appends the release with its audit event, under the per-name
// lock promotions take, so that rollbacks and promotions racing each other
// form one chain. A retry, or a repeated alert, finds the target current
// and appends nothing.
//
// Alertmanager webhooks (alertmanager.Parse, Service.HandleAlerts) roll back
// the name an alert labels, with the guards an unattended trigger needs.
package rollback
