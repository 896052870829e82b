#!/usr/bin/env bash
# Soak: a release `defender serve` (embedded policies, one log line per
# decision, as deployed) under steady load for a long time, watching for
# errors and leaks. Bounded: it stops after DURATION.
#
# The load, RATE reviews/s in all (default: half the throughput a short
# saturation probe measures), split over three clients:
#   - HTTP/1.1 keep-alive over CONNECTIONS connections, half the rate;
#   - HTTP/2, as the API server speaks it, over 4 connections, the other half;
#   - a new TLS connection per review, CHURN_RATE/s, so a leaked connection shows.
# It samples the server's RSS (/proc/PID/status) and open file descriptors
# (/proc/PID/fd) at start, every SAMPLE_EVERY seconds under load, and at the
# end, and fails (exit 1, saying why) when
#   - any review got an answer other than 2xx, or an error (connect, TLS, timeout);
#   - the idle server holds more descriptors after the soak than after the warm-up;
#   - RSS under load at the end exceeds RSS under load at the start (after the
#     warm-up) by more than RSS_TOLERANCE_PERCENT % plus RSS_SLACK_MB MB;
#   - the server exits, or does not shut down cleanly on SIGTERM at the end.
#
#   bash bench/soak.sh                    # DURATION=30m, RATE=half of saturation
#   DURATION=60s bash bench/soak.sh       # the short version tests/run.sh runs
#   DURATION=10m RATE=2000 bash bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30m}
RATE=${RATE:-}
CONNECTIONS=${CONNECTIONS:-16}
CHURN_RATE=${CHURN_RATE:-20}
WARMUP=${WARMUP:-15s}
RSS_TOLERANCE_PERCENT=${RSS_TOLERANCE_PERCENT:-10}
RSS_SLACK_MB=${RSS_SLACK_MB:-4}
BENCH_NAME=soak
# log, free_port, wait_for_answers, and $OHA (installed once).
source bench/common.sh

# seconds 30m -> 1800 (s, m, h suffixes, or plain seconds).
seconds() {
  case $1 in
    *h) echo $((${1%h} * 3600)) ;;
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
DURATION_S=$(seconds "$DURATION")
WARMUP_S=$(seconds "$WARMUP")
# About 30 samples per run, 5 to 60 s apart.
SAMPLE_EVERY=${SAMPLE_EVERY:-$((DURATION_S / 30 < 5 ? 5 : DURATION_S / 30 > 60 ? 60 : DURATION_S / 30))}

# The static release build the container image is made of (one build in CI).
source .ci/release-build.sh
DEFENDER=$(release_binary)
WORK=$(mktemp -d -t defender-soak-XXXX)
CLIENTS=()
cleanup() {
  for pid in "${CLIENTS[@]}" ${PID:-}; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
fail() {
  log "FAILED: $*"
  log "server log (last MB): $WORK/defender.log; client results: $WORK/*.json"
  exit 1
}

"$DEFENDER" certs --out "$WORK/certs" >/dev/null 2>&1
python3 bench/review.py >"$WORK/review.json"
CA=$WORK/certs/ca.crt
PORT=$(free_port)
URL=https://127.0.0.1:$PORT/validate
# Decisions are logged as deployed; only the last MB is kept.
"$DEFENDER" serve --listen "127.0.0.1:$PORT" \
  --tls-cert "$WORK/certs/tls.crt" --tls-key "$WORK/certs/tls.key" \
  2> >(tail -c 1048576 >"$WORK/defender.log") &
PID=$!
wait_for_answers "$URL" "$CA" "$WORK/review.json" || fail "the server did not come up"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
fds() { find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
alive() { kill -0 "$PID" 2>/dev/null || fail "the server exited"; }

# The idle server's descriptors, once the clients' connections have closed.
settled_fds() {
  local previous=-1 now
  for _ in $(seq 20); do
    now=$(fds)
    [[ $now == "$previous" ]] && break
    previous=$now
    sleep 1
  done
  echo "$now"
}

# load SECONDS RATE PREFIX: the three clients in the background, results in PREFIX-*.json.
# Each sends rate x seconds reviews (a count, not a deadline, so none is cut
# off at the end), with a 10 s timeout per review, and is stopped if it takes
# twice as long as planned.
load() {
  local seconds=$1 half=$(($2 / 2)) prefix=$3
  local common=(--no-tui --output-format json -t 10s -m POST -D "$WORK/review.json"
    -H 'Content-Type: application/json' --cacert "$CA")
  local bound=$((2 * seconds + 30))
  CLIENTS=()
  timeout "$bound" "$OHA" "${common[@]}" -c "$CONNECTIONS" -q "$half" -n "$((half * seconds))" "$URL" \
    >"$prefix-http1.json" &
  CLIENTS+=($!)
  timeout "$bound" "$OHA" "${common[@]}" --http2 -c 4 -p 8 -q "$(($2 - half))" -n "$((($2 - half) * seconds))" \
    "$URL" >"$prefix-http2.json" &
  CLIENTS+=($!)
  timeout "$bound" "$OHA" "${common[@]}" --disable-keepalive -c 2 -q "$CHURN_RATE" -n "$((CHURN_RATE * seconds))" \
    "$URL" >"$prefix-churn.json" &
  CLIENTS+=($!)
}

wait_for_clients() {
  for pid in "${CLIENTS[@]}"; do
    wait "$pid" || fail "a load client failed or overran its time (exit status $?)"
  done
}

# Fails on any answer but 2xx and any client error; prints the review count.
check_results() {
  python3 - "$@" <<'PY' || fail "reviews failed (above)"
import json, sys
total = bad = 0
for path in sys.argv[1:]:
    with open(path) as f:
        result = json.load(f)
    codes = result.get("statusCodeDistribution", {})
    errors = result.get("errorDistribution", {})
    total += sum(codes.values()) + sum(errors.values())
    for code, count in codes.items():
        if not code.startswith("2"):
            bad += count
            print(f"{path}: {count} answers with status {code}", file=sys.stderr)
    for error, count in errors.items():
        bad += count
        print(f"{path}: {count} errors: {error}", file=sys.stderr)
print(total)
sys.exit(1 if bad else 0)
PY
}

START_RSS=$(rss_kb) START_FDS=$(fds)
log "server up (pid $PID): RSS $(mb "$START_RSS") MB, $START_FDS fds"
if [[ -z $RATE ]]; then
  "$OHA" --no-tui --output-format json -z 5s -c "$CONNECTIONS" -m POST -D "$WORK/review.json" \
    -H 'Content-Type: application/json' --cacert "$CA" "$URL" >"$WORK/saturation.json"
  SATURATION=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"]))' "$WORK/saturation.json")
  RATE=$((SATURATION / 2))
  log "saturation probe: $SATURATION reviews/s; soaking at half, $RATE/s"
fi

log "warm-up: ${WARMUP_S}s at $RATE/s"
load "$WARMUP_S" "$RATE" "$WORK/warmup"
wait_for_clients
alive
check_results "$WORK"/warmup-*.json >/dev/null
IDLE_RSS=$(rss_kb) IDLE_FDS=$(settled_fds)
log "after warm-up, idle: RSS $(mb "$IDLE_RSS") MB, $IDLE_FDS fds"

log "soak: ${DURATION_S}s at $RATE/s (+$CHURN_RATE/s on new connections), a sample every ${SAMPLE_EVERY}s"
printf 'seconds\trss_kb\tfds\n' >"$WORK/samples.tsv"
load "$DURATION_S" "$RATE" "$WORK/soak"
began=$SECONDS next=5 LOAD_RSS="" LOAD_FDS=""
while kill -0 "${CLIENTS[@]}" 2>/dev/null; do
  alive
  elapsed=$((SECONDS - began))
  if ((elapsed >= next && elapsed < DURATION_S)); then
    rss=$(rss_kb) open=$(fds)
    printf '%s\t%s\t%s\n' "$elapsed" "$rss" "$open" >>"$WORK/samples.tsv"
    log "$(printf '%5ss  RSS %6s MB  %4s fds' "$elapsed" "$(mb "$rss")" "$open")"
    LOAD_RSS=${LOAD_RSS:-$rss} LOAD_FDS=${LOAD_FDS:-$open}
    END_LOAD_RSS=$rss END_LOAD_FDS=$open
    next=$((next + SAMPLE_EVERY))
  fi
  sleep 1
done
wait_for_clients
alive
[[ -n $LOAD_RSS ]] || fail "no sample was taken under load"
REVIEWS=$(check_results "$WORK"/soak-*.json)
END_RSS=$(rss_kb) END_FDS=$(settled_fds)

ALLOWED_KB=$((LOAD_RSS + LOAD_RSS * RSS_TOLERANCE_PERCENT / 100 + RSS_SLACK_MB * 1024))
echo "soak: ${DURATION_S}s at $RATE reviews/s (+$CHURN_RATE/s on new connections): $REVIEWS reviews, 0 errors, all 2xx"
echo "RSS MB: start $(mb "$START_RSS"), idle after warm-up $(mb "$IDLE_RSS"), under load first $(mb "$LOAD_RSS") last $(mb "$END_LOAD_RSS") (limit $(mb "$ALLOWED_KB")), idle at end $(mb "$END_RSS")"
echo "open fds: start $START_FDS, idle after warm-up $IDLE_FDS, under load first $LOAD_FDS last $END_LOAD_FDS, idle at end $END_FDS"
echo "samples: $WORK/samples.tsv"

((END_FDS <= IDLE_FDS)) || fail "descriptors grew: $IDLE_FDS idle after warm-up, $END_FDS idle after the soak"
((END_LOAD_RSS <= ALLOWED_KB)) || fail "RSS grew under load from $(mb "$LOAD_RSS") MB to $(mb "$END_LOAD_RSS") MB (limit $(mb "$ALLOWED_KB") MB: +$RSS_TOLERANCE_PERCENT % +$RSS_SLACK_MB MB)"

# A clean exit on SIGTERM after all that.
kill -TERM "$PID"
status=0
wait "$PID" || status=$?
PID=""
((status == 0)) || fail "the server exited with status $status on SIGTERM"
log "passed; the server shut down cleanly"
