// Package ci will hold the CI-facing glue: GitHub Actions outputs, job
// summaries, annotations and OIDC token exchange (DESIGN.md §5). It is built
// by its own issue; the package exists so the layout is stable.
package ci
