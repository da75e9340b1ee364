package registry

import (
	"errors"
	"fmt"
)

// ErrorKind classifies a failure so that each protocol layer can map it to
// its own status in one place (the HTTP API maps kinds to status codes).
type ErrorKind int

// The closed set of error kinds. An error without a kind is Internal, and its
// text never reaches a client.
const (
	Internal         ErrorKind = iota // a bug or an unexpected failure
	Invalid                           // the request is malformed
	NotFound                          // the named thing does not exist
	Exists                            // create-once target already holds other content
	Conflict                          // the request conflicts with current state
	GateFailed                        // a gate refused a promotion
	Unauthenticated                   // no or bad credential
	Forbidden                         // the credential may not do this
	TooLarge                          // the request is over a configured size limit
	Unavailable                       // a dependency is down; retrying may help
	MethodNotAllowed                  // the route exists, the method does not
	TooManyRequests                   // the caller is over a rate or concurrency limit; retry later
)

var kindNames = [...]string{"internal", "invalid", "not_found", "exists", "conflict", "gate_failed",
	"unauthenticated", "forbidden", "too_large", "unavailable", "method_not_allowed", "too_many_requests"}

func (k ErrorKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is the one domain error type. Code is a stable, machine-readable
// identifier (e.g. "version_exists") that clients may switch on; Message is
// for humans and must never contain secrets or internal detail.
type Error struct {
	Kind    ErrorKind
	Code    string
	Message string
	Details any
	Err     error // the cause, for logs; never sent to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// WithDetails returns e with structured details attached.
func (e *Error) WithDetails(d any) *Error { e.Details = d; return e }

// WithCause returns e with the underlying cause attached for logging.
func (e *Error) WithCause(err error) *Error { e.Err = err; return e }

// AsError returns the *Error in err's chain, or an Internal error wrapping
// err when there is none.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Internal, Code: CodeInternal.Name, Message: "internal error", Err: err}
}

// KindOf reports the kind of err (Internal when err carries none).
func KindOf(err error) ErrorKind { return AsError(err).Kind }
