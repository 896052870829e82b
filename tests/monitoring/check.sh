#!/usr/bin/env bash
# Checks Defender's alerts with promtool: the rules file is valid and its unit
# tests (tests/monitoring/prometheus-rules.test.yaml) pass. tests/run.sh runs
# this; tests/monitoring.rs checks the rest (metric names, runbooks, the
# kustomize component's copies).
set -euo pipefail
cd "$(dirname "$0")/../.."

promtool=$(bash .ci/promtool.sh | tail -n 1)
"$promtool" check rules charts/defender/files/prometheus-rules.yaml
"$promtool" test rules tests/monitoring/prometheus-rules.test.yaml
