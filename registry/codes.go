package registry

import "fmt"

// Code is a stable, machine-readable error identifier that clients switch
// on. Each code is declared once, below, with the one kind it always has
// (and so the one HTTP status), in the manner of distribution's errcode
// registry; Codes lists them for the README's table and its test. Never
// rename one.
type Code struct {
	Name        string
	Kind        ErrorKind
	Description string
}

// Errorf builds an *Error with this code and its kind.
func (c Code) Errorf(format string, args ...any) *Error {
	return &Error{Kind: c.Kind, Code: c.Name, Message: fmt.Sprintf(format, args...)}
}

func (c Code) String() string { return c.Name }

// The error codes of the API.
var (
	CodeInvalidName      = Code{"invalid_name", Invalid, "an artifact name is not lowercase DNS-label segments separated by '/'"}
	CodeInvalidVersion   = Code{"invalid_version", Invalid, "a version is not a strict semantic version"}
	CodeInvalidKind      = Code{"invalid_kind", Invalid, "an artifact kind is not model, schema, features, agent-config or generic"}
	CodeInvalidPath      = Code{"invalid_path", Invalid, "a file path is unsafe, too long or listed twice"}
	CodeInvalidDigest    = Code{"invalid_digest", Invalid, "a digest is not sha256:<64 lowercase hex>"}
	CodeInvalidLabel     = Code{"invalid_label", Invalid, "a label key or value is not allowed"}
	CodeInvalidRequest   = Code{"invalid_request", Invalid, "the request is malformed (JSON, parameters, limits of fields)"}
	CodeInvalidEvidence  = Code{"invalid_evidence", Invalid, "an evidence document does not parse as its type"}
	CodeDigestMismatch   = Code{"digest_mismatch", Invalid, "uploaded bytes do not hash to the digest, or their length differs"}
	CodeIncompleteBody   = Code{"incomplete_body", Invalid, "the request body ended before its declared length, or broke off"}
	CodeBlobNotFound     = Code{"blob_not_found", Invalid, "a published file names a blob that was not uploaded"}
	CodeBlobSizeMismatch = Code{"blob_size_mismatch", Invalid, "a published file's size differs from its uploaded blob"}
	CodeNotPromotable    = Code{"promotion_not_allowed", Invalid, "nothing is promoted into this environment, or not from there"}
	CodeUnauthenticated  = Code{"unauthenticated", Unauthenticated, "no credential, or an unknown or revoked one"}
	CodeInvalidToken     = Code{"invalid_token", Unauthenticated, "an OIDC token failed verification (issuer, audience, algorithm, key or signature); details.reason says which"}
	CodeTokenExpired     = Code{"token_expired", Unauthenticated, "an OIDC token is expired or not yet valid; fetch a fresh one"}
	CodeForbidden        = Code{"forbidden", Forbidden, "the credential's role may not do this"}
	CodeWrongEnvironment = Code{"wrong_environment", Forbidden, "the credential is bound to another environment"}
	CodePublishNotFirst  = Code{"publish_not_allowed", Forbidden, "only the first environment accepts publishes"}
	CodeEvidenceNotFirst = Code{"evidence_not_allowed", Forbidden, "evidence is attached in the first environment only"}
	CodeOwnerRequired    = Code{"owner_required", Forbidden, "the credential has no owner identity; re-issue it with one to approve or mint keys"}
	CodeNoMatchingRule   = Code{"no_matching_rule", Forbidden, "a valid OIDC token matched none of its issuer's rules; the message names the claims compared"}
	CodeNotFound         = Code{"not_found", NotFound, "no such route, environment, artifact, file or record"}
	CodeVersionNotFound  = Code{"version_not_found", NotFound, "the version does not exist in this environment"}
	CodeEvidenceNotFound = Code{"evidence_not_found", NotFound, "the version has no evidence document of this type"}
	CodeNoMatch          = Code{"no_matching_version", NotFound, "no version satisfies the constraint"}
	CodeMethodNotAllowed = Code{"method_not_allowed", MethodNotAllowed, "the route exists, the method does not (see Allow)"}
	CodeVersionExists    = Code{"version_exists", Exists, "the version exists with different content; versions are immutable"}
	CodeKeyExists        = Code{"key_exists", Exists, "an API key with this id or token already exists"}
	CodeGateRunExists    = Code{"gate_run_exists", Exists, "a gate run with this id already exists"}
	CodeKindMismatch     = Code{"kind_mismatch", Conflict, "the artifact already has versions of another kind"}
	CodeNotEligible      = Code{"not_eligible", Conflict, "the version was never released in this environment, so nothing can roll back to it; details list the eligible versions"}
	CodeReleaseChanged   = Code{"release_changed", Conflict, "the current release changed while the request ran; look again and retry"}
	CodeTooLarge         = Code{"too_large", TooLarge, "over a configured size limit (file, files per version, manifest, body)"}
	CodeGateFailed       = Code{"gate_failed", GateFailed, "a gate refused the promotion or rollback; details carry the report"}
	CodeRateLimited      = Code{"rate_limited", TooManyRequests, "the credential is over its request rate or its concurrent uploads on this replica; retry after Retry-After seconds"}
	CodeInternal         = Code{"internal", Internal, "a server fault; the cause is in the server log under the request id"}
	CodeUnavailable      = Code{"unavailable", Unavailable, "storage or the database is unreachable; retrying may help"}
	CodeBlobCollected    = Code{"blob_being_collected", Unavailable, "stagegate gc is removing a blob the publish names; retry shortly (a blob_not_found then says to upload it again)"}
)

// Codes lists every error code, in the order of the README's table.
func Codes() []Code {
	return []Code{
		CodeInvalidName, CodeInvalidVersion, CodeInvalidKind, CodeInvalidPath, CodeInvalidDigest, CodeInvalidLabel,
		CodeInvalidRequest, CodeInvalidEvidence, CodeDigestMismatch, CodeIncompleteBody, CodeBlobNotFound,
		CodeBlobSizeMismatch, CodeNotPromotable, CodeUnauthenticated, CodeInvalidToken, CodeTokenExpired, CodeForbidden,
		CodeWrongEnvironment, CodePublishNotFirst, CodeEvidenceNotFirst, CodeOwnerRequired, CodeNoMatchingRule, CodeNotFound,
		CodeVersionNotFound, CodeEvidenceNotFound, CodeNoMatch, CodeMethodNotAllowed, CodeVersionExists, CodeKeyExists, CodeGateRunExists, CodeKindMismatch, CodeNotEligible,
		CodeReleaseChanged, CodeTooLarge, CodeGateFailed, CodeRateLimited, CodeInternal, CodeUnavailable, CodeBlobCollected,
	}
}
