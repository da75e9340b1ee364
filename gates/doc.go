// Package gates decides whether an artifact version may be promoted into an
// environment. It is a pure library: the promotion service fills a Subject
// (metadata plus functions that open blobs), loads the target environment's
// Policy and calls Engine.Evaluate. Nothing here talks to HTTP, SQL or
// object storage, so every check is testable with in-memory fakes and a
// gate run can be replayed from its inputs.
//
// # Policies
//
// One YAML policy per target environment lists the checks to run, for
// which artifact kinds, with which parameters:
//
//	environment: prod
//	checks:
//	  - name: promotion-order            # every kind
//	  - name: json-schema
//	    kinds: [agent-config, features]
//	  - name: soak-time
//	    params: {min: 24h}
//	  - name: metric-rules
//	    kinds: [model]
//	    required: false                  # advisory: reported, never blocks
//	    params:
//	      rules:
//	        - name: auc-floor
//	          expr: "metrics.auc >= 0.91 && metrics.auc >= current.metrics.auc - 0.005"
//
// Loading is strict: unknown keys, unknown check names, unknown kinds, bad
// parameters and rule expressions that do not compile refuse the policy with
// a *PolicyError naming the line. Each run records the policy's digest
// (sha256 of its bytes). Defaults for staging and prod are embedded
// (DefaultPolicy).
//
// # Checks and parameters
//
// Data validation:
//   - json-schema: agent-config and features files (.json/.yaml/.yml) valid
//     against the schemas in package schemas. Params: max_file_bytes.
//   - schema-compat: JSON Schema files compared with the same path in the
//     target's current release, Confluent-style. Params: mode
//     (BACKWARD|FORWARD|FULL|NONE, default BACKWARD), max_file_bytes.
//   - safetensors: .safetensors headers consistent with themselves and the
//     file size. Params: max_header_bytes (default 100000000).
//   - allowed-formats: file extensions on an allow-list. Params: extensions.
//
// Tests:
//   - required-evidence: evidence types present. Params: types (required).
//   - junit: JUnit XML evidence with no failures or errors and enough tests.
//     Params: evidence_type (junit), min_tests (1), max_file_bytes.
//   - metric-rules: CEL rules over `metrics` and `current.metrics`. Params:
//     rules [{name, expr}], evidence_type (metrics), max_file_bytes.
//
// Security:
//   - signature: trusted CI signature (skipped while no keys are
//     configured). Params: required (error instead of skip).
//   - digest-integrity: every file and evidence blob re-hashed, except a
//     file whose promotion copy already hashed the bytes it is about to
//     publish (details count those as byCopy). No params.
//   - secret-scan: credentials in text files, reported by file, line and
//     rule, never by value. Params: extensions, max_file_bytes, min_entropy.
//   - pickle-scan: opcode walk of pickles (and PyTorch zip/tar archives)
//     refusing code-execution imports. Params: extensions, deny_modules,
//     deny_globals.
//   - size-limits: per-file and total size. Params: max_file_bytes,
//     max_total_bytes.
//   - provenance: every provenance evidence document names an allowed
//     source. Params: repositories (required), refs, workflows (patterns:
//     exact text or a glob where '*' stays within one '/'-separated
//     segment, so refs/heads/* is not refs/heads/a/b), evidence_type
//     (provenance), max_file_bytes. Fails without provenance, and when any
//     document names another source, so a second document cannot launder
//     a first. Provenance is what the publisher attached: with OIDC
//     trusted publishing, pin the publishing rule to the same repository
//     so that the document and the credential agree.
//
// Process:
//   - promotion-order: source is the environment right before the target.
//   - soak-time: minimum time in the source. Params: min (e.g. 24h, 7d).
//   - freeze-windows: windows that block promotion. Params: windows
//     [{name, cron, duration, timezone} or {name, start, end, timezone}].
//   - approvals: approvals by count distinct people holding role for the
//     target. Params: count (1), role (approver), max_age,
//     allow_self_approval (false). People are key owners, never key names:
//     one owner's approvals count once however many keys they hold. Never
//     counted: approvals through a key without an owner; the promoter's own
//     (unless allow_self_approval); approvals through a key the promoter
//     minted, and approvals by whoever minted the promoting key, since a
//     key's owner is its minter's say-so (allow_self_approval does not lift
//     these). A promoting key without an owner fails the check. Details list
//     the counted identities and each discounted approval with its rule
//     (no-identity, other-environment, role, self-approval,
//     minted-by-promoter, minted-promoter-key, expired, future) and reason.
//     Owners are compared case-insensitively; stagegate does not verify
//     them, so whoever may mint keys must be trusted to name owners truly.
//
// # Rollbacks
//
// A rollback does not run the target's promotion policy: RollbackPolicy
// builds a short, fixed set in code — digest-integrity over every blob of
// the version in the environment's bucket, environment-signature (the
// environment's own signature over the manifest, verified by the service
// with its current and rotated keys and judged from
// Subject.EnvironmentSignature; not a name policies may list), and the
// freeze-windows entries of the environment's policy, advisory when an
// admin forces the rollback. Its digest covers the set, the environment's
// policy digest and the force.
//
// # Results
//
// Each check returns Passed, Failed (the artifact does not meet the policy),
// Errored (the check could not decide; retry after fixing the cause) or
// Skipped (not applicable), with a one-line reason and structured details.
// A promotion proceeds only when no required check failed or errored.
package gates
