package httpapi

import (
	"net/http"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/registry"
)

// statusOf is the one table from domain error kinds to HTTP status codes.
var statusOf = map[registry.ErrorKind]int{
	registry.Internal:         http.StatusInternalServerError,
	registry.Invalid:          http.StatusBadRequest,
	registry.NotFound:         http.StatusNotFound,
	registry.Exists:           http.StatusConflict,
	registry.Conflict:         http.StatusConflict,
	registry.GateFailed:       http.StatusUnprocessableEntity,
	registry.Unauthenticated:  http.StatusUnauthorized,
	registry.Forbidden:        http.StatusForbidden,
	registry.TooLarge:         http.StatusRequestEntityTooLarge,
	registry.Unavailable:      http.StatusServiceUnavailable,
	registry.MethodNotAllowed: http.StatusMethodNotAllowed,
	registry.TooManyRequests:  http.StatusTooManyRequests,
}

// wireError converts err for the wire. Internal errors keep their text out
// of the response; the cause goes to the log only.
func wireError(err error) (int, api.ErrorBody) {
	e := registry.AsError(err)
	status, ok := statusOf[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	if e.Kind == registry.Internal {
		return status, api.ErrorBody{Error: api.ErrorDetail{Code: registry.CodeInternal.Name, Message: "internal error; see the server log for the request id"}}
	}
	return status, api.ErrorBody{Error: api.ErrorDetail{Code: e.Code, Message: e.Message, Details: e.Details}}
}
