#!/usr/bin/env bash
# Latency a real kube-apiserver adds per request with Defender as a webhook
# and with the equivalent ValidatingAdmissionPolicies (CEL, in the API
# server's process), over no admission policy at all, measured in one run:
#   - dry-run DELETE of an ordinary namespace (core-namespaces rule; Defender
#     also applies namespace-deletion, whose budget a dry run only checks),
#   - real DELETE of a namespace created for it just before (untimed): Defender
#     spends from its namespace budget (raised to 100,000 so none is refused),
#   - dry-run CREATE of bench/review.py's 2 KB Ingress (ingress-hosts rule),
# all allowed in every configuration, so each request takes the same path.
#
# Four configurations, installed at once, each selecting only its own
# namespaces (label bench.defender.io/admission), so requests alternate
# between them one by one and machine drift cancels out:
#   none            no admission policy
#   defender        Defender, budgets in memory (--budgets local)
#   defender-lease  Defender as deployed in a cluster (--own-namespace): the
#                   namespace budget lives in a Lease, watched; a real DELETE
#                   writes its spend to it (compare-and-swap)
#   vap             bench/apiserver/vap.yaml
# Before measuring, violating requests prove each one is in force, and each
# Defender's protected-object index is current; after, the Defenders'
# decision counts prove every measured request reached them.
#
# The control plane is tests/e2e/cluster.sh's (binaries from
# tests/e2e/build-control-plane.sh, cached). The Defenders are release
# `defender serve` processes on loopback with the embedded policies (the
# namespace budget raised),
# registered with deploy/base's ValidatingWebhookConfiguration
# (clientConfig.url), mutual TLS and a namespace watch, as the end-to-end
# suite runs them. The client is one keep-alive HTTPS connection
# (bench/apiserver/measure.py). Everything started is stopped on exit. Not
# part of the test suite.
#
#   bash bench/apiserver.sh           # ITERATIONS=500 WARMUP=20 per request kind and configuration
#   DEFENDER=/path/to/defender bash bench/apiserver.sh   # another build (e.g. an older commit's)
set -euo pipefail
cd "$(dirname "$0")/.."
# Other work on the machine skews every figure: reported with the results.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

ITERATIONS=${ITERATIONS:-500}
WARMUP=${WARMUP:-20}

log() { printf '[apiserver-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Every benchmark builds the same set: examples pull in dev-dependency features,
# so building the binary alone would compile its dependencies a second time.
cargo build --release --quiet --bin defender --examples
DEFENDER=${DEFENDER:-target/release/defender}
BIN=$(tests/e2e/build-control-plane.sh | tail -n1)
KUBECTL=$BIN/kubectl

WORK=$(mktemp -d -t defender-apiserver-XXXX)
CLUSTER=$WORK/cluster
# Each Defender's port and process, by name.
declare -A PORTS PIDS
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -d $CLUSTER/pids ]]; then bash tests/e2e/cluster.sh down "$CLUSTER" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting the control plane"
DEFENDER_E2E_BIN_DIR=$BIN bash tests/e2e/cluster.sh up "$CLUSTER" >/dev/null
k() { "$KUBECTL" --kubeconfig="$CLUSTER/kubeconfig" "$@"; }

"$DEFENDER" certs --service defender --namespace defender-system --out "$WORK/certs" >/dev/null
# start_defender NAME FLAGS...: a release `defender serve` on a free loopback
# port, as the end-to-end suite runs it; sets PORT.
start_defender() {
  local name=$1; shift
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$DEFENDER" serve --listen "127.0.0.1:$PORT" \
    --tls-cert "$WORK/certs/tls.crt" --tls-key "$WORK/certs/tls.key" \
    --kubeconfig "$CLUSTER/kubeconfig" --client-ca "$CLUSTER/ca.crt" --log-format json "$@" \
    >"$WORK/$name.log" 2>&1 &
  PORTS[$name]=$PORT PIDS[$name]=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null --cacert "$WORK/certs/ca.crt" --cert "$CLUSTER/pki/admin.crt" \
      --key "$CLUSTER/pki/admin.key" "https://127.0.0.1:$PORT/readyz" 2>/dev/null && return 0
    kill -0 "${PIDS[$name]}" 2>/dev/null || break
    sleep 0.2
  done
  cat "$WORK/$name.log" >&2
  log "$name did not become ready"
  exit 1
}

# metrics NAME: one Defender's /metrics.
metrics() {
  curl -fsS --cacert "$WORK/certs/ca.crt" --cert "$CLUSTER/pki/admin.crt" --key "$CLUSTER/pki/admin.key" \
    "https://127.0.0.1:${PORTS[$1]}/metrics"
}
# index_current NAME: waits until every watch of NAME's protected-object
# index is current, so its namespace DELETEs read memory, as they do in a
# running cluster.
index_current() {
  local text
  for _ in $(seq 150); do
    text=$(metrics "$1")
    # A build without the index has nothing to wait for.
    grep -q '^defender_protected_index_watches' <<<"$text" || return 0
    if grep -q '^defender_protected_index_watches{state="not_current"} 0$' <<<"$text" &&
      ! grep -q '^defender_protected_index_watches{state="current"} 0$' <<<"$text"; then
      return 0
    fi
    sleep 0.2
  done
  grep '^defender_protected_index' <<<"$text" >&2
  log "$1's protected-object index did not become current"
  exit 1
}

# register NAME: deploy/base's webhooks, pointed at Defender on $PORT, for NAME's namespaces.
register() {
  k kustomize deploy/base | k create --dry-run=client -o json -f - |
    python3 bench/apiserver/measure.py webhook "$1" "https://127.0.0.1:$PORT/validate" "$WORK/certs/ca-bundle.b64" |
    k apply -f - >/dev/null
}

log "creating the namespaces"
k create namespace defender-system >/dev/null
for configuration in none defender defender-lease vap; do
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: bench-$configuration
  labels:
    bench.defender.io/admission: $configuration
    defender.io/skip-delete-confirmation: "true"
---
apiVersion: v1
kind: Namespace
metadata:
  name: bench-core-$configuration
  labels:
    bench.defender.io/admission: $configuration
    defender.io/core: "true"
EOF
done

log "starting two Defenders and installing their webhooks and the policies"
# The embedded policies, with a namespace budget large enough for every
# measured real deletion: a spent budget would turn them into denials.
mkdir "$WORK/policies"
cp policies/*.yaml "$WORK/policies/"
sed -i 's/deletions: 3 .*/deletions: 100000/' "$WORK/policies/namespace-deletion.yaml"
grep -q 'deletions: 100000' "$WORK/policies/namespace-deletion.yaml" || { log "cannot raise the namespace budget"; exit 1; }
# Budgets in memory: what a replica without --own-namespace does.
start_defender defender --budgets local --policies "$WORK/policies"
register defender
# As deployed (POD_NAMESPACE): the namespace budget lives in a Lease in
# defender-system, and a dry-run namespace DELETE reads it.
start_defender defender-lease --own-namespace defender-system --policies "$WORK/policies"
register defender-lease
k apply -f bench/apiserver/vap.yaml >/dev/null
index_current defender
index_current defender-lease

log "measuring: $ITERATIONS requests per kind and configuration, alternating"
server_version=$(curl -fsS --cacert "$CLUSTER/ca.crt" --cert "$CLUSTER/pki/admin.crt" \
  --key "$CLUSTER/pki/admin.key" "$(cat "$CLUSTER/apiserver-url")/version" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["gitVersion"])')
echo "$(nproc) cores, load average before $LOAD_BEFORE; ITERATIONS=$ITERATIONS WARMUP=$WARMUP; kube-apiserver $server_version"
python3 bench/apiserver/measure.py run --server "$(cat "$CLUSTER/apiserver-url")" \
  --ca "$CLUSTER/ca.crt" --cert "$CLUSTER/pki/admin.crt" --key "$CLUSTER/pki/admin.key" \
  --iterations "$ITERATIONS" --warmup "$WARMUP"
# Ingress webhooks fail open (failurePolicy Ignore): make sure none did.
expected=$((3 * (ITERATIONS + WARMUP)))
for name in defender defender-lease; do
  decisions=$(grep -c '"verdict"' "$WORK/$name.log" || true)
  echo "$name judged $decisions requests (the measured ones: $expected)"
  ((decisions >= expected)) || { tail -n 20 "$WORK/$name.log" >&2; log "$name missed requests"; exit 1; }
done
# Where the namespace DELETEs' protected-object lookups were answered:
# resource types read from the index's memory, or listed live.
for name in defender defender-lease; do
  echo "$name: $(metrics "$name" | grep '^defender_protected_index' | tr '\n' ' ')"
done
# Resident memory after the run (the index's watches included).
for name in defender defender-lease; do
  echo "$name: $(($(ps -o rss= -p "${PIDS[$name]}") / 1024)) MiB RSS"
done
# How much of what a webhook adds is Defender's own work.
python3 bench/apiserver/measure.py inside "$WORK/defender.log" "$WORK/defender-lease.log"
