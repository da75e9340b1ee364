// Package api is the JSON request and response bodies of the REST API,
// shared by the server and the Go client.
//
// A body that is a domain record on its own (a version, a release, an
// approval, a gate run) is sent as the registry type itself; this package
// holds the envelopes around them and the bodies that exist only on the
// wire. It must not import gin, the gates engine or anything internal, so
// that a client can depend on it without pulling in the server.
package api
