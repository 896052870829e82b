#!/usr/bin/env bash
# Load benchmark: the same AdmissionReview (a 2 KB Ingress CREATE) posted over
# keep-alive TLS to three servers, one after another with the same settings:
#   limit     examples/allow_all.rs: the same TLS/HTTP stack, answers without reading
#   echo      the same, reading the body and answering with its uid: the least a
#             correct webhook does (with --echo-uid)
#   defender  defender serve, default policies (one log line per decision, as deployed)
#   opa       OPA serving the equivalent Rego (bench/opa/policy.rego) over TLS
# Per server: throughput at saturation and latency at a fixed offered rate,
# RUNS times each; the table shows medians. Not part of the test suite.
#
#   bash bench/load.sh            # DURATION=10s RATE=5000 CONNECTIONS=32 RUNS=3
#   DEFENDER=/path/to/defender TARGETS=defender bash bench/load.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
# Other work on the machine skews every figure: reported with the results.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

DURATION=${DURATION:-10s}
RATE=${RATE:-5000}
CONNECTIONS=${CONNECTIONS:-32}
RUNS=${RUNS:-3}
TARGETS=${TARGETS:-limit echo defender opa}
OPA_VERSION=v1.8.0

# log, free_port, wait_for_answers, $CACHE, and $OHA (installed once).
source bench/common.sh
if [[ ! -x $CACHE/bin/opa ]]; then
  log "installing OPA $OPA_VERSION (go install, once)"
  GOBIN=$CACHE/bin go install "github.com/open-policy-agent/opa@$OPA_VERSION"
fi
# Every benchmark builds the same set: examples pull in dev-dependency features,
# so building the binary alone would compile its dependencies a second time.
cargo build --release --quiet --bin defender --examples
DEFENDER=${DEFENDER:-target/release/defender}

WORK=$(mktemp -d -t defender-bench-XXXX)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
"$DEFENDER" certs --out "$WORK/certs" >/dev/null 2>&1
python3 bench/review.py >"$WORK/review.json"
CERT=$WORK/certs/tls.crt KEY=$WORK/certs/tls.key CA=$WORK/certs/ca.crt

# start TARGET: starts the server, sets URL and PID.
start() {
  local port; port=$(free_port)
  case $1 in
    limit)
      target/release/examples/allow_all "127.0.0.1:$port" "$CERT" "$KEY" &
      URL=https://127.0.0.1:$port/validate ;;
    echo)
      target/release/examples/allow_all "127.0.0.1:$port" "$CERT" "$KEY" --echo-uid &
      URL=https://127.0.0.1:$port/validate ;;
    defender)
      "$DEFENDER" serve --listen "127.0.0.1:$port" --tls-cert "$CERT" --tls-key "$KEY" \
        2>"$WORK/defender.log" &
      URL=https://127.0.0.1:$port/validate ;;
    opa)
      "$CACHE/bin/opa" run --server --log-level error --addr "127.0.0.1:$port" \
        --tls-cert-file "$CERT" --tls-private-key-file "$KEY" bench/opa/policy.rego &
      URL=https://127.0.0.1:$port/ ;;
  esac
  PID=$!
  PIDS+=("$PID")
  wait_for_answers "$URL" "$CA" "$WORK/review.json" || { log "$1 did not come up"; exit 1; }
}

# Highest VmRSS of PID while the command after it runs, in MB.
peak_rss() {
  local pid=$1; shift
  local peak=0 rss
  "$@" &
  local load=$!
  while kill -0 "$load" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    ((rss > peak)) && peak=$rss
    sleep 0.5
  done
  wait "$load"
  awk -v kb="$peak" 'BEGIN { printf "%.1f\n", kb / 1024 }'
}

oha_run() { # oha_run OUT [extra flags...]
  local out=$1; shift
  "$OHA" --no-tui --output-format json -z "$DURATION" -c "$CONNECTIONS" -m POST \
    -D "$WORK/review.json" -H 'Content-Type: application/json' --cacert "$CA" "$@" "$URL" >"$out"
}

for target in $TARGETS; do
  start "$target"
  log "$target: warm-up"
  "$OHA" --no-tui -z 2s -c "$CONNECTIONS" -m POST -D "$WORK/review.json" \
    -H 'Content-Type: application/json' --cacert "$CA" "$URL" >/dev/null
  for run in $(seq "$RUNS"); do
    log "$target: run $run/$RUNS at saturation ($CONNECTIONS connections, $DURATION)"
    oha_run "$WORK/$target-saturation-$run.json"
    log "$target: run $run/$RUNS at $RATE req/s"
    rss=$(peak_rss "$PID" oha_run "$WORK/$target-rate-$run.json" -q "$RATE" --latency-correction)
    echo "$rss" >"$WORK/$target-rss"
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true
done

echo "$(nproc) cores, load average before $LOAD_BEFORE; DURATION=$DURATION RATE=$RATE CONNECTIONS=$CONNECTIONS RUNS=$RUNS; oha $("$OHA" --version | awk '{print $2}'), OPA $OPA_VERSION"
python3 bench/summarize.py "$WORK" "$TARGETS"
