package httpapi

import (
	"net/http"

	"github.com/stagegate/stagegate/registry"
)

// statusOf is the one table from domain error kinds to HTTP status codes.
var statusOf = map[registry.ErrorKind]int{
	registry.Internal:        http.StatusInternalServerError,
	registry.Invalid:         http.StatusBadRequest,
	registry.NotFound:        http.StatusNotFound,
	registry.Exists:          http.StatusConflict,
	registry.Conflict:        http.StatusConflict,
	registry.GateFailed:      http.StatusUnprocessableEntity,
	registry.Unauthenticated: http.StatusUnauthorized,
	registry.Forbidden:       http.StatusForbidden,
	registry.TooLarge:        http.StatusRequestEntityTooLarge,
	registry.Unavailable:     http.StatusServiceUnavailable,
}

// ErrorBody is the JSON error envelope of every failed request.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a stable code, a human message and optional details.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// wireError converts err for the wire. Internal errors keep their text out
// of the response; the cause goes to the log only.
func wireError(err error) (int, ErrorBody) {
	e := registry.AsError(err)
	status, ok := statusOf[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	if e.Kind == registry.Internal {
		return status, ErrorBody{Error: ErrorDetail{Code: registry.CodeInternal, Message: "internal error; see the server log for the request id"}}
	}
	return status, ErrorBody{Error: ErrorDetail{Code: e.Code, Message: e.Message, Details: e.Details}}
}
