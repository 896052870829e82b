#!/usr/bin/env bash
# Memory of Defender's cluster view on a real control plane: RSS of a
# release `defender serve` that watches a cluster of 1,000 namespaces,
# 10,000 Pods, 2,000 Ingresses and 500 Deployments, against the same
# Defender watching an empty cluster, and what that makes per object.
#
# The control plane is tests/e2e/cluster.sh's (binaries from
# tests/e2e/build-control-plane.sh, cached); no scheduler or kubelet runs, so
# Pods stay Pending and count as live. bench/cluster-view/populate.py creates
# the objects. Defender runs as the end-to-end suite runs it (kubeconfig,
# --own-namespace, mutual TLS), on loopback; it is measured once it is ready
# (/readyz: every watch has listed its kind) and has idled 2 s. Everything
# started is stopped on exit. Not part of the test suite.
#
#   bash bench/cluster-view-memory.sh      # NAMESPACES=1000 PODS=10000 INGRESSES=2000 DEPLOYMENTS=500
set -euo pipefail
cd "$(dirname "$0")/.."
# Other work on the machine skews every figure: reported with the results.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

NAMESPACES=${NAMESPACES:-1000}
PODS=${PODS:-10000}
INGRESSES=${INGRESSES:-2000}
DEPLOYMENTS=${DEPLOYMENTS:-500}

log() { printf '[cluster-view-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Every benchmark builds the same set: examples pull in dev-dependency features,
# so building the binary alone would compile its dependencies a second time.
cargo build --release --quiet --bin defender --examples
DEFENDER=${CARGO_TARGET_DIR:-target}/release/defender
BIN=$(tests/e2e/build-control-plane.sh | tail -n1)

WORK=$(mktemp -d -t defender-cluster-view-XXXX)
CLUSTER=$WORK/cluster
DEFENDER_PID=
stop_defender() {
  if [[ -n $DEFENDER_PID ]]; then
    kill "$DEFENDER_PID" 2>/dev/null || true
    wait "$DEFENDER_PID" 2>/dev/null || true
    DEFENDER_PID=
  fi
}
cleanup() {
  stop_defender
  if [[ -d $CLUSTER/pids ]]; then bash tests/e2e/cluster.sh down "$CLUSTER" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting the control plane"
DEFENDER_E2E_BIN_DIR=$BIN bash tests/e2e/cluster.sh up "$CLUSTER" >/dev/null
APISERVER=$(cat "$CLUSTER/apiserver-url")
ADMIN=(--cacert "$CLUSTER/ca.crt" --cert "$CLUSTER/pki/admin.crt" --key "$CLUSTER/pki/admin.key")
"$BIN/kubectl" --kubeconfig="$CLUSTER/kubeconfig" create namespace defender-system >/dev/null
"$DEFENDER" certs --service defender --namespace defender-system --out "$WORK/certs" >/dev/null

# measure NAME: starts Defender, waits (up to 300 s) until it is ready,
# lets it idle 2 s, and sets READY_S (start to ready), RSS_KB and HWM_KB
# (VmHWM: the peak, reached while listing).
measure() {
  local name=$1 port began status
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  began=$(date +%s.%N)
  "$DEFENDER" serve --listen "127.0.0.1:$port" \
    --tls-cert "$WORK/certs/tls.crt" --tls-key "$WORK/certs/tls.key" \
    --kubeconfig "$CLUSTER/kubeconfig" --client-ca "$CLUSTER/ca.crt" \
    --own-namespace defender-system --log-format json >"$WORK/$name.log" 2>&1 &
  DEFENDER_PID=$!
  for _ in $(seq 6000); do
    if curl -fsS -o /dev/null --cacert "$WORK/certs/ca.crt" --cert "$CLUSTER/pki/admin.crt" \
      --key "$CLUSTER/pki/admin.key" "https://127.0.0.1:$port/readyz" 2>/dev/null; then
      READY_S=$(python3 -c "import time; print(f'{time.time() - $began:.2f}')")
      sleep 2
      status=/proc/$DEFENDER_PID/status
      RSS_KB=$(awk '/^VmRSS:/ {print $2}' "$status")
      HWM_KB=$(awk '/^VmHWM:/ {print $2}' "$status")
      stop_defender
      return 0
    fi
    kill -0 "$DEFENDER_PID" 2>/dev/null || break
    sleep 0.05
  done
  tail -n 20 "$WORK/$name.log" >&2
  log "$name did not become ready"
  exit 1
}

log "measuring Defender on the empty cluster"
measure empty
EMPTY=("$READY_S" "$RSS_KB" "$HWM_KB")

log "creating $NAMESPACES namespaces, $PODS pods, $INGRESSES ingresses, $DEPLOYMENTS deployments"
created=$(python3 bench/cluster-view/populate.py --server "$APISERVER" --ca "$CLUSTER/ca.crt" \
  --cert "$CLUSTER/pki/admin.crt" --key "$CLUSTER/pki/admin.key" --namespaces "$NAMESPACES" \
  --pods "$PODS" --ingresses "$INGRESSES" --deployments "$DEPLOYMENTS")
log "created: $created"

log "measuring Defender on the full cluster"
measure full
FULL=("$READY_S" "$RSS_KB" "$HWM_KB")

server_version=$(curl -fsS "${ADMIN[@]}" "$APISERVER/version" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["gitVersion"])')
echo "$(nproc) cores, load average before $LOAD_BEFORE"
python3 - "$created" "${EMPTY[@]}" "${FULL[@]}" "$server_version" "$WORK/full.log" <<'PY'
import json, sys
created = json.loads(sys.argv[1])
empty = [float(x) for x in sys.argv[2:5]]
full = [float(x) for x in sys.argv[5:8]]
objects = created["namespaces"] + created["pods"] + created["ingresses"] + created["deployments"]
mb = lambda kb: f"{kb / 1024:.1f} MB"
print(f"kube-apiserver {sys.argv[8]}; {created['namespaces']} namespaces, {created['pods']} pods "
      f"({created['pod_bytes']} bytes each as served), {created['ingresses']} ingresses, "
      f"{created['deployments']} deployments: {objects} objects, created in {created['seconds']} s\n")
print("| cluster | start to ready | VmRSS | VmHWM (peak, while listing) |")
print("|---|---|---|---|")
print(f"| empty | {empty[0]:.2f} s | {mb(empty[1])} | {mb(empty[2])} |")
print(f"| {objects} objects | {full[0]:.2f} s | {mb(full[1])} | {mb(full[2])} |")
per = lambda i: (full[i] - empty[i]) * 1024 / objects
print(f"\nPer object: {per(1):.0f} bytes of RSS, {per(2):.0f} bytes of peak (VmHWM).")
synced = []
for line in open(sys.argv[9]):
    event = json.loads(line) if line.startswith("{") else {}
    if str(event.get("message", "")).startswith("cluster view: ") and "count" in event:
        synced.append(f"{event['message'].split()[2]} {event['count']}")
print("Held by the view: " + ", ".join(synced) + ".")
PY
