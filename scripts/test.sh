#!/usr/bin/env bash
# Runs stagegate's whole test suite against real services:
#   - MinIO (built once with `go install`, cached in the Go bin dir), started on
#     a free loopback port with a temporary data dir;
#   - PostgreSQL: the one on 127.0.0.1:5432 when it answers (a fresh database
#     per run, dropped afterwards), otherwise a temporary cluster started here
#     (installed from Debian packages when missing);
#   - the cosign CLI (go install, cached) as the peer for signatures, and
#     crane, oras and the OCI conformance suite as peers of the OCI API.
# Then gofmt, go vet and go test -race over every package, and with
# STAGEGATE_FUZZ=1 (or CI=true) every fuzz target (scripts/fuzz.sh). Stops what
# it started.
set -euo pipefail
cd "$(dirname "$0")/.."

COSIGN_VERSION=v2.6.5
CRANE_VERSION=v0.22.1
ORAS_VERSION=v1.3.6
OCI_CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111
# shellcheck source=scripts/services.sh
source scripts/services.sh

install_tool minio "github.com/minio/minio@$MINIO_VERSION"
install_tool cosign "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"
# Registry clients and the OCI distribution-spec conformance suite, for the
# OCI API's tests (internal/server/oci_e2e_test.go). The suite is a main
# package (its README builds it with go build), so go install caches it too.
install_tool crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
install_tool oras "oras.land/oras/cmd/oras@$ORAS_VERSION"
install_tool conformance "github.com/opencontainers/distribution-spec/conformance@$OCI_CONFORMANCE_VERSION"
wait_tools
export STAGEGATE_TEST_COSIGN="$GOBIN_DIR/cosign"
export STAGEGATE_TEST_CRANE="$GOBIN_DIR/crane" STAGEGATE_TEST_ORAS="$GOBIN_DIR/oras"
export STAGEGATE_TEST_OCI_CONFORMANCE="$GOBIN_DIR/conformance"

start_minio test
start_postgres test

# --- Chromium (the dashboard's browser test) -------------------------------
if ! command -v chromium >/dev/null 2>&1; then
  log "installing Chromium from Debian packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# --- checks --------------------------------------------------------------
log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n "$unformatted" ]]; then echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1; fi
log "go vet ./..."
go vet ./...
log "go test -race ./..."
go test -race -count=1 -timeout 25m ./... "$@"
if [[ "${STAGEGATE_FUZZ:-}" == 1 || "${CI:-}" == true ]]; then
  # Fuzz output goes to stderr so that stdout still ends with go test's
  # own closing lines, which CI reads.
  log "fuzzing"
  scripts/fuzz.sh >&2
fi
