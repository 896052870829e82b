#!/usr/bin/env bash
# Rewrites the copies of the alerts and the dashboard that
# deploy/components/monitoring needs (kustomize reads no file outside its
# directory) from charts/defender/files/, their source. tests/monitoring.rs
# fails while they differ.
set -euo pipefail
cd "$(dirname "$0")/../.."

rules=charts/defender/files/prometheus-rules.yaml
component=deploy/components/monitoring
{
  cat <<'HEADER'
# Generated from charts/defender/files/prometheus-rules.yaml by
# tests/monitoring/sync.sh: edit that file, then run the script.
# The alerts and their runbooks: docs/runbooks.md.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: defender
  namespace: defender-system
  labels:
    app.kubernetes.io/name: defender
spec:
HEADER
  # The rules without the file's leading comment, indented under spec.
  sed -n '/^groups:/,$p' "$rules" | sed 's/^\(.\)/  \1/'
} > "$component/prometheusrule.yaml"
cp charts/defender/files/grafana-dashboard.json "$component/grafana-dashboard.json"
