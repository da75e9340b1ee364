#!/usr/bin/env bash
# Runs the data-path benchmark (go run ./bench, see bench/main.go): starts
# MinIO and a PostgreSQL database exactly as scripts/test.sh does, then runs
# every stagegate path beside its bare-MinIO baseline and prints one table of
# ratios. Arguments go to the bench program (scripts/bench.sh -rows small).
# Slow (minutes, writes a few GiB): not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/services.sh
source scripts/services.sh

install_tool minio "github.com/minio/minio@$MINIO_VERSION"
# The peer row: the CNCF Distribution registry (S3 driver on the same MinIO),
# pushed and pulled with oras.
install_tool registry "github.com/distribution/distribution/v3/cmd/registry@v3.1.2"
install_tool oras "oras.land/oras/cmd/oras@v1.3.6"
wait_tools
start_minio bench
start_postgres bench

# The bench program's MinIO and PostgreSQL flags default to the
# STAGEGATE_TEST_* variables start_minio and start_postgres exported.
# MinIO's pid: the small-publish rows report its CPU time and requests per
# operation (its metrics are public in the MinIO start_minio runs).
STAGEGATE_BENCH_MINIO_PID=$minio_pid go run ./bench "$@"
