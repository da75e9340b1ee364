// Package oci is the protocol half of stagegate's OCI Distribution API
// (/v2/): the specification's error codes and envelope, the parsing of
// /v2/ paths and references (both untrusted input), and tag and catalog
// pagination. It knows nothing of HTTP frameworks; internal/httpapi serves
// it, and the registry service does the work.
package oci

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/stagegate/stagegate/registry"
)

// Code is an error code of the OCI Distribution Specification, with the
// status it is answered with. Each is declared once, below (the way
// distribution's errcode registry binds a code to its status).
type Code struct {
	Name   string
	Status int
}

// The error codes of the distribution spec (§ "Error Codes"), plus UNKNOWN
// and UNAVAILABLE, which distribution itself uses for server faults.
var (
	CodeBlobUnknown         = Code{"BLOB_UNKNOWN", http.StatusNotFound}
	CodeBlobUploadInvalid   = Code{"BLOB_UPLOAD_INVALID", http.StatusBadRequest}
	CodeBlobUploadUnknown   = Code{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound}
	CodeDigestInvalid       = Code{"DIGEST_INVALID", http.StatusBadRequest}
	CodeManifestBlobUnknown = Code{"MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest}
	CodeManifestInvalid     = Code{"MANIFEST_INVALID", http.StatusBadRequest}
	CodeManifestUnknown     = Code{"MANIFEST_UNKNOWN", http.StatusNotFound}
	CodeNameInvalid         = Code{"NAME_INVALID", http.StatusBadRequest}
	CodeNameUnknown         = Code{"NAME_UNKNOWN", http.StatusNotFound}
	CodeSizeInvalid         = Code{"SIZE_INVALID", http.StatusBadRequest}
	CodeTagInvalid          = Code{"TAG_INVALID", http.StatusBadRequest}
	CodeUnauthorized        = Code{"UNAUTHORIZED", http.StatusUnauthorized}
	CodeDenied              = Code{"DENIED", http.StatusForbidden}
	CodeUnsupported         = Code{"UNSUPPORTED", http.StatusMethodNotAllowed}
	CodeTooManyRequests     = Code{"TOOMANYREQUESTS", http.StatusTooManyRequests}
	// CodePaginationInvalid is distribution's code for a bad n parameter.
	CodePaginationInvalid = Code{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest}
	CodeUnknown           = Code{"UNKNOWN", http.StatusInternalServerError}
	CodeUnavailable       = Code{"UNAVAILABLE", http.StatusServiceUnavailable}
)

// Error is an error as the OCI API answers it. Status is Code.Status unless
// the domain asked for another (a 409 for an immutable version). Err keeps
// the domain error, if any, for the log and the audit trail.
type Error struct {
	Code    Code
	Status  int
	Message string
	Detail  any
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code.Name + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code.Name + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with code c and its status.
func (c Code) Errorf(format string, args ...any) *Error {
	return &Error{Code: c, Status: c.Status, Message: fmt.Sprintf(format, args...)}
}

// Body is the error envelope of the spec: {"errors":[{"code","message","detail"}]}.
type Body struct {
	Errors []Entry `json:"errors"`
}

// Entry is one error of a Body.
type Entry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// Body returns the envelope that carries e.
func (e *Error) Body() Body {
	return Body{Errors: []Entry{{Code: e.Code.Name, Message: e.Message, Detail: e.Detail}}}
}

// Wire converts err, returned while serving endpoint, to the error the OCI
// API answers. An *Error is answered as it is; a domain error is mapped by
// its kind and code, and "not found" names what the endpoint looks for.
// Internal errors keep their text out of the answer.
func Wire(err error, endpoint Endpoint) *Error {
	var oe *Error
	if errors.As(err, &oe) {
		return oe
	}
	d := registry.AsError(err)
	wrap := func(c Code) *Error {
		return &Error{Code: c, Status: c.Status, Message: d.Message, Detail: d.Details, Err: err}
	}
	switch d.Kind {
	case registry.Unauthenticated:
		return wrap(CodeUnauthorized)
	case registry.Forbidden:
		return wrap(CodeDenied)
	case registry.MethodNotAllowed:
		return wrap(CodeUnsupported)
	case registry.NotFound:
		switch {
		case endpoint == Manifest && d.Code != registry.CodeNotFound.Name:
			return wrap(CodeManifestUnknown)
		case endpoint == Blob:
			return wrap(CodeBlobUnknown)
		case endpoint == Upload:
			return wrap(CodeBlobUploadUnknown)
		}
		return wrap(CodeNameUnknown)
	case registry.Invalid:
		switch d.Code {
		case registry.CodeInvalidName.Name:
			return wrap(CodeNameInvalid)
		case registry.CodeInvalidDigest.Name, registry.CodeDigestMismatch.Name:
			return wrap(CodeDigestInvalid)
		case registry.CodeInvalidVersion.Name:
			return wrap(CodeTagInvalid)
		case registry.CodeBlobNotFound.Name:
			return wrap(CodeManifestBlobUnknown)
		case registry.CodeIncompleteBody.Name, registry.CodeBlobSizeMismatch.Name:
			return wrap(CodeBlobUploadInvalid)
		}
		if endpoint == Upload || endpoint == UploadStart || endpoint == Blob {
			return wrap(CodeBlobUploadInvalid)
		}
		return wrap(CodeManifestInvalid)
	case registry.Exists:
		// Versions are immutable: a tag cannot be moved to other content.
		e := wrap(CodeTagInvalid)
		e.Status = http.StatusConflict
		return e
	case registry.Conflict:
		e := wrap(CodeManifestInvalid)
		e.Status = http.StatusConflict
		return e
	case registry.TooLarge:
		e := wrap(CodeSizeInvalid)
		e.Status = http.StatusRequestEntityTooLarge
		return e
	case registry.Unavailable:
		return wrap(CodeUnavailable)
	case registry.TooManyRequests:
		return wrap(CodeTooManyRequests)
	case registry.GateFailed:
		e := wrap(CodeDenied)
		e.Status = http.StatusUnprocessableEntity
		return e
	}
	return &Error{Code: CodeUnknown, Status: CodeUnknown.Status,
		Message: "internal error; see the server log for the request id", Err: err}
}
