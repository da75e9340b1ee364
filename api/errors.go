package api

// ErrorBody is the JSON envelope of every failed request:
// {"error":{"code":…,"message":…,"details":…}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a stable code, a human message and optional
// structured details (for gate_failed, a GateFailure).
//
// Details is any so that the server can put in whatever value the domain
// error carries. A decoder that wants the details raw sets Details to a
// *json.RawMessage before unmarshalling: encoding/json then decodes into
// that pointer instead of building a map.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}
