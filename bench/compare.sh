#!/usr/bin/env bash
# Side-by-side benchmark: Latchkey (SQLite, PostgreSQL) against panva's
# oidc-provider, every scenario of `latchkey bench`, same clients, same load.
#
#   bench/compare.sh                      # the full run (about 10 minutes)
#   DURATION=3s RUNS=1 bench/compare.sh   # a quick look
#
# Each server runs pinned to CPU 0 and the load generator to CPU 1, so "rps per
# server CPU-second" compares the servers' own work, not the machine. Every JSON
# result goes to bench/results/DATE.jsonl; the table is printed and saved beside it.
#
# Settings (environment):
#   DURATION=10s WARMUP=2s CONNECTIONS=16   passed to every `latchkey bench` run
#   RUNS=2                                  runs per scenario and server (the table shows the best)
#   REFRESH_TOKENS=1000                     refresh families minted per server (each run uses CONNECTIONS of them)
#   SERVERS="latchkey-sqlite latchkey-postgres oidc-provider"
#       add oidc-provider-norotate for the peer with rotateRefreshToken off (refresh only; run with
#       `latchkey bench refresh --allow-unrotated`, which accepts an unchanged refresh token).
#   CASES="cc-es256 cc-eddsa cc-opaque refresh introspect-jwt introspect-opaque revoke-introspect-opaque revoke-introspect-jwt"
#   POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable   (the server that gets a scratch database)
#
# Needs: Go, Node 20+ with npm, python3, taskset, curl; psql/createdb/dropdb for the PostgreSQL run.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
PEER_DIR="$BENCH_DIR/peers/oidc-provider"

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-16}
RUNS=${RUNS:-2}
REFRESH_TOKENS=${REFRESH_TOKENS:-1000}
SERVERS=${SERVERS:-latchkey-sqlite latchkey-postgres oidc-provider}
CASES=${CASES:-cc-es256 cc-eddsa cc-opaque refresh introspect-jwt introspect-opaque revoke-introspect-opaque revoke-introspect-jwt}
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}

# The server under test runs on SERVER_CPU, the load generator on LOAD_CPU.
SERVER_CPU=0
LOAD_CPU=1

# Set as things are started, so cleanup knows exactly what is ours.
WORK=""          # temp dir: binary, data dirs, logs, token files
SERVER_PID=""    # the server currently running
BENCH_PID=""     # the load generator currently running
PG_DB=""         # the scratch PostgreSQL database, once created

log() { printf '[compare] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# seconds_of turns "10s", "2m" or "15" into whole seconds, to bound waits.
seconds_of() {
  case "$1" in
    *ms) echo 1 ;;
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *[!0-9]*|'') die "cannot read duration '$1' (use e.g. 10s or 1m)" ;;
    *) echo "$1" ;;
  esac
}

# stop_server ends the server we started: TERM, a bounded wait for a graceful
# exit, then KILL. Only ever our own PID.
stop_server() {
  local pid=$SERVER_PID
  [[ -n $pid ]] || return 0
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do   # up to 10 s
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "server $pid did not stop in 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

drop_pg_db() {
  [[ -n $PG_DB ]] || return 0
  dropdb --if-exists --maintenance-db="$POSTGRES_URL" "$PG_DB" \
    || log "could not drop database $PG_DB; drop it by hand"
  PG_DB=""
}

# cleanup runs on every exit, including Ctrl-C: stop what we started, drop the
# scratch database, remove the temp dir.
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $BENCH_PID ]]; then
    kill -TERM "$BENCH_PID" 2>/dev/null || true   # timeout passes it on to the bench
    wait "$BENCH_PID" 2>/dev/null || true
  fi
  stop_server
  drop_pg_db
  if [[ -n $WORK && -d $WORK ]]; then rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready polls URL until it answers 200, for at most 60 s of wall time, and
# gives up early if the server process has died (its log then says why).
wait_ready() {
  local url=$1 logfile=$2 deadline=$((SECONDS + 60))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server exited during start; last lines of $logfile:"
      tail -n 20 "$logfile" >&2
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  log "server not ready at $url after 60 s; last lines of $logfile:"
  tail -n 20 "$logfile" >&2
  return 1
}

build_latchkey() {
  log "building latchkey"
  (cd "$REPO" && go build -o "$WORK/latchkey" ./cmd/latchkey)
  "$WORK/latchkey" bench --help >/dev/null 2>&1 || die "this latchkey has no 'bench' command"
}

install_peer() {
  log "installing oidc-provider ($PEER_DIR)"
  # npm ci installs exactly what package-lock.json pins; without a lock (first
  # run after changing package.json) npm install makes one.
  if [[ -f $PEER_DIR/package-lock.json ]]; then
    (cd "$PEER_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
  else
    (cd "$PEER_DIR" && npm install --no-audit --no-fund --loglevel=error >&2)
  fi
}

# pg_available says whether the PostgreSQL server answers.
pg_available() {
  command -v psql >/dev/null && command -v createdb >/dev/null && command -v dropdb >/dev/null \
    && psql "$POSTGRES_URL" -Atqc 'select 1' >/dev/null 2>&1
}

# pg_url_for prints POSTGRES_URL with its database replaced by $1.
pg_url_for() {
  python3 - "$POSTGRES_URL" "$1" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
}

# start_latchkey STORE starts Latchkey (store sqlite or postgres) on a free
# port, waits for /readyz and mints the refresh families. Sets SERVER_PID,
# ISSUER_BASE (realm issuers are ISSUER_BASE/realms/R) and TOKENS_FILE.
start_latchkey() {
  local store=$1 port data db_flags=() logfile
  port=$(free_port)
  data="$WORK/data-$store"
  mkdir -p "$data"
  logfile="$WORK/latchkey-$store.log"
  if [[ $store == postgres ]]; then
    PG_DB="latchkey_bench_$(date +%s)_$$"
    createdb --maintenance-db="$POSTGRES_URL" "$PG_DB" || { PG_DB=""; log "could not create a database"; return 1; }
    db_flags=(--db "$(pg_url_for "$PG_DB")")
  fi
  log "starting latchkey ($store) on 127.0.0.1:$port, CPU $SERVER_CPU"
  taskset -c "$SERVER_CPU" "$WORK/latchkey" serve --dev --addr "127.0.0.1:$port" \
    --data-dir "$data" --seed "$BENCH_DIR/seed.yaml" ${db_flags[@]+"${db_flags[@]}"} \
    >"$logfile" 2>&1 &
  SERVER_PID=$!
  wait_ready "http://127.0.0.1:$port/readyz" "$logfile" || return 1
  ISSUER_BASE="http://127.0.0.1:$port"
  TOKENS_FILE="$WORK/refresh-$store.txt"
  log "minting $REFRESH_TOKENS refresh families"
  # The store is shared with the running server (SQLite WAL, or PostgreSQL), as
  # a deployment that has been signing users in would be.
  "$WORK/latchkey" bench mint-refresh --realm bench --client rp --user bench \
    --count "$REFRESH_TOKENS" --data-dir "$data" ${db_flags[@]+"${db_flags[@]}"} \
    --out "$TOKENS_FILE" >&2
}

# start_peer ROTATE starts oidc-provider (ROTATE 1 or 0: rotateRefreshToken)
# on a free port; it mints its refresh tokens itself and writes them to a file
# before saying it is ready.
start_peer() {
  local rotate=$1 port logfile
  port=$(free_port)
  logfile="$WORK/oidc-provider-$rotate.log"
  TOKENS_FILE="$WORK/refresh-peer-$rotate.txt"
  rm -f "$TOKENS_FILE"
  log "starting oidc-provider (rotateRefreshToken=$rotate) on 127.0.0.1:$port, CPU $SERVER_CPU"
  (cd "$PEER_DIR" && PORT=$port ROTATE_REFRESH_TOKEN=$rotate REFRESH_TOKENS=$REFRESH_TOKENS \
    REFRESH_TOKENS_FILE=$TOKENS_FILE exec taskset -c "$SERVER_CPU" node server.mjs) >"$logfile" 2>&1 &
  SERVER_PID=$!
  wait_ready "http://127.0.0.1:$port/.well-known/openid-configuration" "$logfile" || return 1
  # The file appears (renamed into place) once minting is done.
  local deadline=$((SECONDS + 60))
  while [[ ! -s $TOKENS_FILE ]] && (( SECONDS < deadline )); do
    sleep 0.2
  done
  [[ -s $TOKENS_FILE ]] || { log "oidc-provider wrote no refresh tokens"; return 1; }
  ISSUER_BASE="http://127.0.0.1:$port"
}

# issuer_for SERVER CASE prints the issuer whose discovery the bench reads.
issuer_for() {
  local server=$1 case=$2
  case $server in
    latchkey-*)
      if [[ $case == cc-eddsa ]]; then echo "$ISSUER_BASE/realms/bench-ed"; else echo "$ISSUER_BASE/realms/bench"; fi ;;
    *) echo "$ISSUER_BASE" ;;
  esac
}

# case_args CASE prints the scenario and client flags of a case, one per line.
# Secrets are the bench-only ones of bench/seed.yaml (and the peer's server.mjs).
case_args() {
  case $1 in
    cc-es256)                 printf '%s\n' client-credentials --client-id cc-es256 --client-secret bench-secret-cc-es256-0123456789abcdefghijklmnop --scope api:read ;;
    cc-eddsa)                 printf '%s\n' client-credentials --client-id cc-eddsa --client-secret bench-secret-cc-eddsa-0123456789abcdefghijklmnop --scope api:read ;;
    cc-opaque)                printf '%s\n' client-credentials --client-id cc-opaque --client-secret bench-secret-cc-opaque-0123456789abcdefghijklmnop --scope api:read ;;
    refresh)                  printf '%s\n' refresh --client-id rp --client-secret bench-secret-rp-0123456789abcdefghijklmnop ;;
    introspect-jwt)           printf '%s\n' introspect --client-id cc-es256 --client-secret bench-secret-cc-es256-0123456789abcdefghijklmnop --scope api:read ;;
    introspect-opaque)        printf '%s\n' introspect --client-id cc-opaque --client-secret bench-secret-cc-opaque-0123456789abcdefghijklmnop --scope api:read ;;
    revoke-introspect-opaque) printf '%s\n' revoke-introspect --client-id cc-opaque --client-secret bench-secret-cc-opaque-0123456789abcdefghijklmnop --scope api:read ;;
    revoke-introspect-jwt)    printf '%s\n' revoke-introspect --client-id cc-es256 --client-secret bench-secret-cc-es256-0123456789abcdefghijklmnop --scope api:read ;;
    *) die "unknown case '$1'" ;;
  esac
}

# supported SERVER CASE says whether a server can run a case at all.
supported() {
  local server=$1 case=$2
  case $server in
    # oidc-provider refuses to introspect or revoke JWT access tokens
    # (unsupported_token_type: "Structured JWT Tokens cannot be introspected").
    oidc-provider) [[ $case != introspect-jwt && $case != revoke-introspect-jwt ]] ;;
    # The non-rotating peer exists only to price rotation.
    oidc-provider-norotate) [[ $case == refresh ]] ;;
    *) return 0 ;;
  esac
}

# record SERVER CASE RUN JSON appends one result line: the bench's own JSON
# object wrapped with what this script knows about the run.
record() {
  printf '{"server":"%s","case":"%s","run":%d,"result":%s}\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}

record_failure() {
  local msg
  msg=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$4")
  printf '{"server":"%s","case":"%s","run":%d,"error":%s}\n' "$1" "$2" "$3" "$msg" >>"$RESULTS"
}

# run_bench BOUND OUT ERR ARGS... runs `latchkey bench ARGS` on the load CPU for
# at most BOUND seconds. It runs in the background and we `wait` for it: bash
# runs an INT/TERM trap only once a foreground command ends, but interrupts
# `wait` at once, so Ctrl-C stops the whole comparison promptly. (timeout puts
# the bench in its own process group, out of reach of the terminal's Ctrl-C;
# cleanup stops it by PID.)
run_bench() {
  local bound=$1 out=$2 err=$3 status=0
  shift 3
  timeout "${bound}s" taskset -c "$LOAD_CPU" "$WORK/latchkey" bench "$@" >"$out" 2>"$err" &
  BENCH_PID=$!
  wait "$BENCH_PID" || status=$?
  BENCH_PID=""
  return "$status"
}

# run_cases SERVER runs every selected case RUNS times against the running server.
run_cases() {
  local server=$1 case run args outfile errfile slice bound
  # A run may spend up to warm-up + duration + pool filling; bound it generously.
  bound=$(( $(seconds_of "$WARMUP") + $(seconds_of "$DURATION") + 120 ))
  outfile="$WORK/bench.out"
  errfile="$WORK/bench.err"
  for case in $CASES; do
    supported "$server" "$case" || continue
    for run in $(seq 1 "$RUNS"); do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        record_failure "$server" "$case" "$run" "server is no longer running"
        continue
      fi
      mapfile -t args < <(case_args "$case")
      if [[ $case == refresh ]]; then
        # Each run takes fresh families: a spent token presented again would be
        # reuse, which revokes its family.
        slice="$WORK/refresh-$server-$run.txt"
        sed -n "$(( (run - 1) * CONNECTIONS + 1 )),$(( run * CONNECTIONS ))p" "$TOKENS_FILE" >"$slice"
        args+=(--refresh-tokens "$slice")
        # The non-rotating peer answers with the same refresh token every time.
        [[ $server == oidc-provider-norotate ]] && args+=(--allow-unrotated)
      fi
      log "$server $case run $run/$RUNS"
      if run_bench "$bound" "$outfile" "$errfile" "${args[@]}" \
          --issuer "$(issuer_for "$server" "$case")" --duration "$DURATION" --warmup "$WARMUP" \
          --connections "$CONNECTIONS" --pid "$SERVER_PID" --json \
          --label "$server $case run $run" && [[ -s $outfile ]]; then
        record "$server" "$case" "$run" "$(tail -n 1 "$outfile")"
      else
        log "  failed: $(tail -n 1 "$errfile")"
        record_failure "$server" "$case" "$run" "$(tail -n 1 "$errfile")"
      fi
    done
  done
}

# bench_server SERVER starts, measures and stops one server.
bench_server() {
  local server=$1
  case $server in
    latchkey-sqlite) start_latchkey sqlite || { stop_server; return 1; } ;;
    latchkey-postgres)
      if ! pg_available; then
        log "PostgreSQL does not answer at $POSTGRES_URL: skipping latchkey-postgres"
        return 0
      fi
      start_latchkey postgres || { stop_server; drop_pg_db; return 1; } ;;
    oidc-provider) start_peer 1 || { stop_server; return 1; } ;;
    oidc-provider-norotate) start_peer 0 || { stop_server; return 1; } ;;
    *) die "unknown server '$server'" ;;
  esac
  run_cases "$server"
  log "stopping $server"
  stop_server
  drop_pg_db
}

main() {
  for tool in go node npm python3 taskset curl timeout; do
    command -v "$tool" >/dev/null || die "$tool is required"
  done
  (( $(nproc) >= 2 )) || die "needs at least 2 CPUs (server on CPU $SERVER_CPU, load on CPU $LOAD_CPU)"
  (( REFRESH_TOKENS >= RUNS * CONNECTIONS )) \
    || die "REFRESH_TOKENS ($REFRESH_TOKENS) must be at least RUNS*CONNECTIONS ($((RUNS * CONNECTIONS)))"

  WORK=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-compare.XXXXXX")
  mkdir -p "$BENCH_DIR/results"
  local stamp
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  RESULTS="$BENCH_DIR/results/$stamp.jsonl"
  : >"$RESULTS"

  build_latchkey
  case " $SERVERS " in *" oidc-provider"*) install_peer ;; esac

  log "duration $DURATION, warm-up $WARMUP, $CONNECTIONS connections, $RUNS run(s) each; results in $RESULTS"
  local server failed=()
  for server in $SERVERS; do
    bench_server "$server" || { log "$server did not start; see the log above"; failed+=("$server"); }
  done

  python3 "$BENCH_DIR/compare_table.py" "$RESULTS" | tee "$BENCH_DIR/results/$stamp.txt"
  log "results: $RESULTS (table: bench/results/$stamp.txt)"
  (( ${#failed[@]} == 0 )) || die "did not start: ${failed[*]}"
}

main "$@"
