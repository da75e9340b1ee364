# Sourced by scripts/test.sh and scripts/bench.sh: the pinned MinIO, the Go
# bin dir where peer tools are cached, cleanup on exit, and starting MinIO and
# a PostgreSQL database the same way for tests and benchmarks. Each start_*
# exports the STAGEGATE_TEST_* variables the tests and `go run ./bench` read.

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
GOBIN_DIR="$(go env GOBIN)"; GOBIN_DIR="${GOBIN_DIR:-$(go env GOPATH)/bin}"
export PATH="$GOBIN_DIR:$PATH"
log() { printf '==> %s\n' "$*" >&2; }

cleanup_cmds=()
cleanup() {
  local i
  for (( i=${#cleanup_cmds[@]}-1; i>=0; i-- )); do eval "${cleanup_cmds[$i]}" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null && return
  local p; for p in $(seq 19000 19999); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }; done
}

wait_for() { # wait_for SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || return 1
    sleep 0.3
  done
}

# --- tools ---------------------------------------------------------------
# Each peer tool is built once with `go install` at a pinned version and
# cached in the Go bin dir. Missing tools build in parallel (the first run on
# an empty machine spends most of its time here); install_tool only starts a
# build, wait_tools waits for all of them.
tool_pids=()
install_tool() { # install_tool BINARY MODULE@VERSION
  [[ -x "$GOBIN_DIR/$1" ]] && return
  log "installing $2 (first time only)"
  (cd /tmp && go install "$2") &
  tool_pids+=("$!")
}
wait_tools() {
  local pid
  for pid in "${tool_pids[@]}"; do wait "$pid" || { log "a tool failed to install"; exit 1; }; done
  tool_pids=()
}

# start_minio NAME: MinIO on a free loopback port with a temporary data dir.
start_minio() {
  minio_port=$(free_port); console_port=$(free_port)
  minio_dir=$(mktemp -d /tmp/stagegate-$1-minio.XXXXXX)
  export MINIO_ROOT_USER=stagegate-$1 MINIO_ROOT_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
  log "starting MinIO on 127.0.0.1:$minio_port"
  MINIO_BROWSER=off MINIO_UPDATE=off MINIO_PROMETHEUS_AUTH_TYPE=public "$GOBIN_DIR/minio" server --quiet --address "127.0.0.1:$minio_port" \
    --console-address "127.0.0.1:$console_port" "$minio_dir" >"$minio_dir.log" 2>&1 &
  minio_pid=$!
  cleanup_cmds+=("kill $minio_pid; wait $minio_pid; rm -rf '$minio_dir' '$minio_dir.log'")
  if ! wait_for 60 curl -fsS "http://127.0.0.1:$minio_port/minio/health/live"; then
    cat "$minio_dir.log" >&2; log "MinIO did not start"; exit 1
  fi
  export STAGEGATE_TEST_MINIO_ENDPOINT="127.0.0.1:$minio_port"
  export STAGEGATE_TEST_MINIO_ACCESS_KEY="$MINIO_ROOT_USER" STAGEGATE_TEST_MINIO_SECRET_KEY="$MINIO_ROOT_PASSWORD"
}

# start_postgres NAME: a fresh database (stagegate_NAME_…, dropped on exit)
# on 127.0.0.1:5432 when it answers, otherwise in a temporary cluster started
# here (installed from Debian packages when missing).
start_postgres() {
  pg_host=127.0.0.1 pg_port=5432 pg_user=postgres
  if ! pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null; then
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      log "installing PostgreSQL from Debian packages"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    pg_bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")
    pg_port=$(free_port)
    pg_dir=$(mktemp -d /tmp/stagegate-$1-pg.XXXXXX)
    as_pg=()
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$pg_dir"; as_pg=(runuser -u postgres --); else pg_user=$(id -un); fi
    log "starting a temporary PostgreSQL on 127.0.0.1:$pg_port"
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U "$pg_user" -A trust >/dev/null
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -o "-h 127.0.0.1 -p $pg_port -k $pg_dir" -l "$pg_dir/log" -w start >/dev/null
    cleanup_cmds+=("${as_pg[*]} $pg_bin/pg_ctl -D '$pg_dir/data' -m fast -w stop; rm -rf '$pg_dir'")
  fi
  pg_db="stagegate_$1_$$_$RANDOM"
  psql -q -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -c "CREATE DATABASE $pg_db" >/dev/null
  cleanup_cmds+=("psql -q -h $pg_host -p $pg_port -U $pg_user -d postgres -c 'DROP DATABASE IF EXISTS $pg_db WITH (FORCE)'")
  export STAGEGATE_TEST_POSTGRES_DSN="postgres://$pg_user@$pg_host:$pg_port/$pg_db?sslmode=disable"
  log "PostgreSQL database $pg_db on $pg_host:$pg_port"
}
