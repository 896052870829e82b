#!/usr/bin/env bash
# Defender's full test suite: formatting, lints, unit and integration tests,
# the policy suites, the dependency check, short fuzz and soak runs, then the
# end-to-end tests against a real control plane.
# This is the command README.md names and CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets --all-features -- -D warnings

# Tools built from source (helm from the Go module proxy, cargo-deny, cargo-fuzz)
# are installed once into this cache, outside the repository, and reused.
TOOLS=${DEFENDER_TOOLS_CACHE:-$HOME/.cache/defender-tools}
export DEFENDER_TOOLS_CACHE=$TOOLS

step "helm for the chart tests (.ci/helm.sh: built once into $TOOLS)"
HELM="$(bash .ci/helm.sh | tail -n 1)"
export HELM
"$HELM" version --short

step "unit, CLI, server and chart tests (chart: helm lint, snapshots; UPDATE_SNAPSHOTS=1 regenerates)"
cargo test --all-targets

step "policy suites (defender test tests/policies)"
cargo run --quiet -- test tests/policies

step "alerts: promtool check rules and their unit tests (tests/monitoring/check.sh; promtool built once into $TOOLS)"
bash tests/monitoring/check.sh

# cargo-deny and cargo-fuzz (.ci/cargo-tool.sh).
source .ci/cargo-tool.sh

step "cargo deny check licenses bans sources (advisories need GitHub, unreachable here: see deny.toml)"
"$(cargo_tool cargo-deny "$TOOLS" 0.20.2)" deny check --hide-inclusion-graph licenses bans sources

step "fuzzing: each target for ${FUZZ_SECONDS:-60}s (fuzz/run.sh; nightly, cargo-fuzz)"
bash fuzz/run.sh

# The static release build (.ci/release-build.sh) is made once, for the soak,
# and reused for the container image; it is kept outside the repository too.
RELEASE_TARGET_DIR=${SOAK_TARGET_DIR:-$HOME/.cache/defender-bench/target}

step "soak: 60s at half of saturation against a release build (bench/soak.sh)"
CARGO_TARGET_DIR=$RELEASE_TARGET_DIR DURATION=60s bash bench/soak.sh

step "container image from the same build (image/build.sh; crane), checked and its binary run (tests/image.py)"
image_tar="$(CARGO_TARGET_DIR=$RELEASE_TARGET_DIR bash image/build.sh | tail -n 1)"
python3 tests/image.py "$image_tar"

if [[ -f tests/e2e/main.rs ]]; then
  step "end-to-end: building (or reusing) the Kubernetes control plane"
  E2E_BIN_DIR="$(bash tests/e2e/build-control-plane.sh | tail -n 1)"
  export E2E_BIN_DIR
  step "end-to-end tests against kube-apiserver $("$E2E_BIN_DIR/kube-apiserver" --version)"
  cargo test --features e2e --test e2e
fi
