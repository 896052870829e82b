#!/usr/bin/env bash
# Runs the fuzz targets, FUZZ_SECONDS (default 60) each, one after another,
# seeded from the repository's examples (fuzz/seeds.rs) and the corpus kept
# from earlier runs (fuzz/corpus/, not committed).
#
#   bash fuzz/run.sh                                  # every target, 60 s each
#   FUZZ_SECONDS=600 bash fuzz/run.sh admission_review
#
# Needs a nightly toolchain (installed with rustup when missing) and
# cargo-fuzz (installed once into ~/.cache/defender-tools). An input that
# breaks an invariant or crashes is saved in fuzz/artifacts/TARGET/ and the
# script fails; once the bug is fixed, keep the input in
# fuzz/regressions/TARGET/, where `cargo test` (tests/fuzz_regressions.rs)
# replays it on stable.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
TOOLS=${DEFENDER_TOOLS_CACHE:-$HOME/.cache/defender-tools}
# Instrumented builds of every dependency take a quarter of an hour: kept
# outside the repository, so a fresh clone rebuilds only Defender itself.
TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/defender-fuzz/target}
CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(admission_review policy_file ingress_host)
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")

log() { printf '[fuzz %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if ! cargo +nightly --version >/dev/null 2>&1; then
  log "fuzzing needs a nightly toolchain; installing it (rustup toolchain install nightly --profile minimal)"
  if ! rustup toolchain install nightly --profile minimal; then
    log "ERROR: no nightly toolchain, and rustup could not install one; cargo-fuzz (libFuzzer) needs nightly"
    exit 1
  fi
fi
source .ci/cargo-tool.sh
PATH="$(dirname "$(cargo_tool cargo-fuzz "$TOOLS" "$CARGO_FUZZ_VERSION")"):$PATH"

cargo run --quiet --example fuzz-seeds -- fuzz/seeds >&2
log "building the targets (nightly, AddressSanitizer, debug assertions)"
cargo +nightly fuzz build --target-dir "$TARGET_DIR" >&2

summary=()
for target in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  log "$target: ${FUZZ_SECONDS}s"
  output=$(mktemp)
  status=0
  # -timeout: an input that takes seconds is a finding too (a review has 4 s in all).
  cargo +nightly fuzz run --target-dir "$TARGET_DIR" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    tee "$output" | { grep -E --line-buffered '^#[0-9]+.*(pulse|DONE)' >&2 || true; } || status=$?
  runs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$output" | tail -n 1)
  corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
  if ((status != 0)); then
    tail -n 40 "$output" >&2
    log "$target FAILED after ${runs:-?} executions: the input is in fuzz/artifacts/$target/ (cargo +nightly fuzz run --target-dir $TARGET_DIR $target FILE replays it)"
    exit 1
  fi
  summary+=("$target: ${runs:-?} executions in ${FUZZ_SECONDS}s, no failure (corpus: $corpus inputs)")
  rm -f "$output"
done
printf '%s\n' "${summary[@]}"
