#!/usr/bin/env bash
# Prints the path of the pinned helm (its last line), building it from the Go
# module proxy into the tools cache the first time (.ci/go-tool.sh); later
# runs reuse it. The chart tests (tests/chart.rs, tests/e2e) call this.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v4.3.2
TOOLS=${DEFENDER_TOOLS_CACHE:-$HOME/.cache/defender-tools}

source .ci/go-tool.sh
mkdir -p "$TOOLS"
# Test binaries may ask at the same time; one builds, the others wait.
exec 9>"$TOOLS/.helm.lock"
flock 9
go_tool helm.sh/helm/v4/cmd/helm "$HELM_VERSION" "$TOOLS"
