// Package ci is the CI-facing glue of `stagegate ci` (DESIGN.md §5): what a
// pipeline step reports back to its CI system. For GitHub Actions: step
// outputs in $GITHUB_OUTPUT (multi-line delimiter form), a Markdown table of
// gate results in $GITHUB_STEP_SUMMARY, and ::error / ::warning workflow
// commands for every failed or errored check, with file annotations where a
// check names a file. It also reads the job's provenance (repository, ref,
// commit, workflow, run) from the CI's variables, for the provenance
// evidence the CLI attaches.
//
// The package is pure: it formats and writes to the files and writers it
// is given, and talks to no server (the client package does, including
// fetching the job's OIDC token).
package ci
