#!/usr/bin/env bash
# Defender's full test suite: formatting, lints, unit and integration tests,
# the policy suites, then the end-to-end tests against a real control plane.
# This is the command README.md names and CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets --all-features -- -D warnings

step "unit, CLI and server tests"
cargo test --all-targets

step "policy suites (defender test tests/policies)"
cargo run --quiet -- test tests/policies

if [[ -f tests/e2e/main.rs ]]; then
  step "end-to-end: building (or reusing) the Kubernetes control plane"
  E2E_BIN_DIR="$(bash tests/e2e/build-control-plane.sh | tail -n 1)"
  export E2E_BIN_DIR
  step "end-to-end tests against kube-apiserver $("$E2E_BIN_DIR/kube-apiserver" --version)"
  cargo test --features e2e --test e2e
fi
