# Shared by the bench scripts (sourced): logging, ports, oha, waiting for a server.

# The scripts' name in log lines.
BENCH_NAME=${BENCH_NAME:-bench}
CACHE=${DEFENDER_BENCH_CACHE:-$HOME/.cache/defender-bench}

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# oha, installed once into the cache.
source .ci/cargo-tool.sh
OHA=$(cargo_tool oha "$CACHE")

# wait_for_answers URL CA BODY: waits (up to 10 s) until URL answers a POST of BODY.
wait_for_answers() {
  local url=$1 ca=$2 body=$3
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null 2>/dev/null --cacert "$ca" -H 'Content-Type: application/json' --data @"$body" "$url"; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}
