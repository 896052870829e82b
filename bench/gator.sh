#!/usr/bin/env bash
# In-process review cost, single-threaded: Gatekeeper's `gator bench` (Rego
# and CEL engines, bench/gator/template.yaml) and Defender's engine
# (examples/engine_bench.rs, embedded policies) on the same Ingress objects:
#   ingress-2kb        the 2 KB Ingress of bench/load.sh, allowed
#   ingress-violating  the same with four bad rule hosts, denied
# gator reviews the bare objects; Defender reviews them wrapped as CREATE
# AdmissionReviews and parses the whole review each time (its evaluation
# alone is reported too). First, bench/gator/equivalence.py checks that the
# three judge 23 edge-case Ingresses alike. The peers then run one after
# another, ROUNDS times, interleaved; the table shows the median of the
# rounds. Not part of the test suite.
#
#   bash bench/gator.sh               # ITERATIONS=10000 WARMUP=100 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
# Other work on the machine skews every figure: reported with the results.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

ITERATIONS=${ITERATIONS:-10000}
WARMUP=${WARMUP:-100}
ROUNDS=${ROUNDS:-3}
CACHE=${DEFENDER_BENCH_CACHE:-$HOME/.cache/defender-bench}
GATOR_VERSION=v3.23.0
GATOR=$CACHE/bin/gator

log() { printf '[gator-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The module version a Go binary was built from ("" if none).
built_version() { go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3 }'; }

if [[ ! -x $GATOR || $(built_version "$GATOR") != "$GATOR_VERSION" ]]; then
  log "installing gator $GATOR_VERSION (go install, once; several minutes)"
  GOBIN=$CACHE/bin go install "github.com/open-policy-agent/gatekeeper/v3/cmd/gator@$GATOR_VERSION"
fi
# Every benchmark builds the same set: examples pull in dev-dependency features,
# so building the binary alone would compile its dependencies a second time.
cargo build --release --quiet --bin defender --examples
# Timing a policy that judges differently would compare nothing.
python3 bench/gator/equivalence.py "$GATOR" target/release/defender

WORK=$(mktemp -d -t defender-gator-XXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/objects"
python3 bench/review.py --object >"$WORK/objects/ingress-2kb.json"
python3 bench/review.py --object --violating >"$WORK/objects/ingress-violating.json"
OBJECTS=(ingress-2kb ingress-violating)

for round in $(seq "$ROUNDS"); do
  for object in "${OBJECTS[@]}"; do
    file=$WORK/objects/$object.json
    for engine in rego cel; do
      log "round $round/$ROUNDS: gator $engine, $object ($ITERATIONS reviews)"
      "$GATOR" bench -f bench/gator/template.yaml -f bench/gator/constraint.yaml -f "$file" \
        --engine "$engine" --iterations "$ITERATIONS" --warmup "$WARMUP" --memory --output json \
        >"$WORK/gator-$engine-$object-$round.json"
    done
    log "round $round/$ROUNDS: defender, $object ($ITERATIONS reviews)"
    target/release/examples/engine_bench --iterations "$ITERATIONS" --warmup "$WARMUP" "$file" \
      >"$WORK/defender-$object-$round.json"
  done
done

echo "$(nproc) cores, load average before $LOAD_BEFORE; ITERATIONS=$ITERATIONS WARMUP=$WARMUP ROUNDS=$ROUNDS; gator $GATOR_VERSION," \
  "$(go version | awk '{print $3}'), $(rustc --version | awk '{print $1, $2}')"
python3 bench/gator_summary.py "$WORK" "${OBJECTS[@]}"
