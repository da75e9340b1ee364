#!/usr/bin/env bash
# Runs every fuzz target of the module (func FuzzXxx(f *testing.F)), one
# after another, each for ${STAGEGATE_FUZZTIME:-10s}. Stops at the first
# failure and names the target; go test has then written the crashing input
# to that package's testdata/fuzz/<target>/, where it stays as a regression
# case once the bug is fixed.
#
#   scripts/fuzz.sh                   # every package
#   scripts/fuzz.sh ./gates ./registry
#   STAGEGATE_FUZZTIME=1m scripts/fuzz.sh ./gates
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${STAGEGATE_FUZZTIME:-10s}"
log() { printf '==> %s\n' "$*" >&2; }

# Packages are those with a test file declaring a fuzz target; `go test
# -list` then names the targets the build actually includes (build tags,
# renamed functions), compiling only those packages.
roots=("$@")
(( ${#roots[@]} )) || roots=(.)
mapfile -t pkgs < <(
  find "${roots[@]}" -name '*_test.go' -not -path '*/testdata/*' -not -path '*/vendor/*' -not -path '*/.*/*' -print0 |
    xargs -0 -r grep -lE '^func Fuzz[A-Za-z0-9_]*\(' |
    xargs -r -n1 dirname | sed -e 's|^\./||' -e 's|^|./|' | sort -u
)
if (( ${#pkgs[@]} == 0 )); then
  log "no fuzz targets found under ${roots[*]}"
  exit 1
fi

total=0
for pkg in "${pkgs[@]}"; do
  if ! listing=$(go test -list '^Fuzz' "$pkg"); then
    printf '%s\n' "$listing" >&2
    log "FAILED: cannot list fuzz targets of $pkg"
    exit 1
  fi
  mapfile -t names < <(printf '%s\n' "$listing" | grep -E '^Fuzz[A-Za-z0-9_]*$' || true)
  for name in "${names[@]}"; do
    log "fuzzing $pkg $name for $fuzztime"
    out=$(mktemp)
    if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out"; then
      # A crash always writes its input ("Failing input written to …").
      # Without one, "context deadline exceeded" is the fuzzing engine
      # missing its own deadline on a loaded machine, not a finding.
      if ! grep -q 'Failing input written to' "$out" && grep -q 'context deadline exceeded' "$out"; then
        log "WARNING: $name in $pkg: the fuzzing engine overran its deadline (no failing input); not a finding"
      else
        rm -f "$out"
        log "FAILED: fuzz target $name in $pkg (crashing input, if any, is in $pkg/testdata/fuzz/$name/)"
        exit 1
      fi
    fi
    rm -f "$out"
    total=$((total + 1))
  done
done
log "fuzzed $total target(s) for $fuzztime each"
