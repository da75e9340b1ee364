// Package importrules has no code of its own: its test enforces the import
// boundaries of the module, so that they fail a build instead of a review.
//
// The domain packages and the wire types must stay free of the HTTP
// framework, SQL and object-storage clients (those are adapters, wired in
// under internal/), and gin must stay inside internal/httpapi so that the
// REST layer remains the one place that knows it.
package importrules
