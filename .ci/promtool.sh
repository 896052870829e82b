#!/usr/bin/env bash
# Prints the path of the pinned promtool (its last line), building it from the
# Go module proxy into the tools cache the first time (.ci/go-tool.sh); later
# runs reuse it. tests/monitoring/check.sh calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Prometheus v3.16.0: its Go module is versioned v0.316.0.
PROMTOOL_VERSION=v0.316.0
TOOLS=${DEFENDER_TOOLS_CACHE:-$HOME/.cache/defender-tools}

source .ci/go-tool.sh
mkdir -p "$TOOLS"
exec 9>"$TOOLS/.promtool.lock"
flock 9
# remove_all_sd leaves out the service discoveries of every cloud (and their
# SDKs: about half of what the build downloads), which checking and testing
# rules never use.
GOFLAGS="${GOFLAGS:-} -tags=remove_all_sd" \
  go_tool github.com/prometheus/prometheus/cmd/promtool "$PROMTOOL_VERSION" "$TOOLS"
