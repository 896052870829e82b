#!/usr/bin/env bash
# A throwaway Kubernetes control plane on loopback, for the end-to-end tests:
# etcd + kube-apiserver + kube-controller-manager (namespace, garbage
# collector, service account and RBAC aggregation controllers). No nodes,
# kubelet or scheduler: admission webhooks need none of them.
#
#   tests/e2e/cluster.sh up   DIR   # start; prints kubeconfig path and URL
#   tests/e2e/cluster.sh down DIR   # stop everything started by `up DIR`
#   tests/e2e/cluster.sh stop-apiserver  DIR   # an API server outage ...
#   tests/e2e/cluster.sh start-apiserver DIR   # ... and its end (same flags, same port)
#
# What `up DIR` leaves in DIR (absolute paths; DIR is created if missing):
#   kubeconfig       admin kubeconfig (user in group system:masters), certs embedded
#   apiserver-url    https://127.0.0.1:<port>, one line
#   ca.crt, ca.key   the cluster CA; it signs the API server's serving cert and the
#                    client certs, and tests may sign Defender's serving cert with it
#   env              sourceable: KUBECONFIG, E2E_APISERVER_URL, E2E_CA_CRT, E2E_CA_KEY,
#                    E2E_BIN_DIR (kubectl etc.), E2E_ETCD_URL, E2E_CLUSTER_DIR
#   logs/*.log       etcd, kube-apiserver, kube-controller-manager
#   pids/*.pid       what `down` stops
#   apiserver.argv   the kube-apiserver command line, NUL-separated, for start-apiserver
#   pki/             the other keys and certs; etcd-data/ the etcd data dir
#
# Binaries come from tests/e2e/build-control-plane.sh (built once, cached), or
# from $DEFENDER_E2E_BIN_DIR if set. DEFENDER_E2E_TIMEOUT (seconds, default 90)
# bounds each readiness wait.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIMEOUT=${DEFENDER_E2E_TIMEOUT:-90}
SERVICE_CIDR=10.0.0.0/24
# kube-controller-manager controllers (canonical names; the short ones such as
# "namespace" are aliases). Besides namespace, garbage collector and service
# accounts: clusterrole-aggregation fills the aggregated ClusterRoles
# admin/edit/view (empty without it, so a RoleBinding to `edit` grants
# nothing), and root-ca-certificate-publisher writes the kube-root-ca.crt
# ConfigMap into every namespace, as a real cluster does.
CONTROLLERS=${DEFENDER_E2E_CONTROLLERS:-namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,clusterrole-aggregation-controller,root-ca-certificate-publisher-controller}

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- ports -------------------------------------------------------------------
# Free loopback TCP ports, picked at random below the kernel's ephemeral range
# (32768+) so outgoing connections do not take them between pick and bind.
declare -A TAKEN=()
# free_port VAR: sets VAR (no subshell, so TAKEN remembers earlier picks).
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ -n "${TAKEN[$p]:-}" ]] && continue
    if ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then continue; fi
    TAKEN[$p]=1
    printf -v "$1" '%s' "$p"
    return 0
  done
  die "no free port found"
}

# --- PKI ---------------------------------------------------------------------
# sign NAME SUBJ EXT: key + cert in $PKI signed by the cluster CA.
sign() {
  local name=$1 subj=$2 ext=$3
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
    -CAcreateserial -days 30 -sha256 -extfile "$PKI/$name.ext" \
    -out "$PKI/$name.crt" 2>/dev/null
}

make_pki() {
  mkdir -p "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -sha256 \
    -subj "/CN=defender-e2e-ca" -keyout "$DIR/ca.key" -out "$DIR/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # Serving cert: the loopback names the tests use, plus the in-cluster names
  # and the first service IP the API server gives its own `kubernetes` Service.
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  # system:masters bypasses RBAC: the admin (and the impersonator in tests).
  sign admin "/O=system:masters/CN=defender-e2e-admin" "$client"
  # The identity the RBAC bootstrap policy binds to role system:kube-controller-manager.
  sign controller-manager "/CN=system:kube-controller-manager" "$client"
  # What the API server presents to admission webhooks (mTLS), via admission.yaml.
  sign webhook-client "/CN=kube-apiserver-webhook-client" "$client"
  # Service-account token signing key pair.
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$DIR/ca.key" "$PKI"/*.key
}

# The API server presents pki/webhook-client.crt to every admission webhook
# ("*"), so webhooks can require client certificates signed by ca.crt.
write_admission_config() {
  cat >"$PKI/webhook-client.kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
  - name: "*"
    user:
      client-certificate: $PKI/webhook-client.crt
      client-key: $PKI/webhook-client.key
EOF
  local plugin
  {
    echo "apiVersion: apiserver.config.k8s.io/v1"
    echo "kind: AdmissionConfiguration"
    echo "plugins:"
    for plugin in ValidatingAdmissionWebhook MutatingAdmissionWebhook; do
      echo "  - name: $plugin"
      echo "    configuration:"
      echo "      apiVersion: apiserver.config.k8s.io/v1"
      echo "      kind: WebhookAdmissionConfiguration"
      echo "      kubeConfigFile: $PKI/webhook-client.kubeconfig"
    done
  } >"$PKI/admission.yaml"
}

# write_kubeconfig FILE USER CERT KEY: self-contained (certs embedded).
write_kubeconfig() {
  local file=$1 user=$2 cert=$3 key=$4
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: defender-e2e
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 "$DIR/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$cert")
    client-key-data: $(base64 -w0 "$key")
contexts:
- name: defender-e2e
  context:
    cluster: defender-e2e
    user: $user
current-context: defender-e2e
EOF
  chmod 600 "$file"
}

# --- processes -----------------------------------------------------------------
# start NAME CMD...: background, stdio to the log (never to our stdout, so
# `$(cluster.sh up DIR)` returns), pid recorded for `down`.
start() {
  local name=$1; shift
  "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name.pid"
  log "started $name (pid $!)"
}

# A pid file is trusted only if that process still has DIR on its command
# line: a stale file must never make us kill a recycled, unrelated pid.
ours() {
  local pid=$1
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/"
}

# wait_for WHAT CMD...: retry CMD until it succeeds or TIMEOUT; fail early if
# one of our processes died (its log says why).
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT)) f
  until "$@" >/dev/null 2>&1; do
    # kill -0, not ours(): these pids were started by this run, and a child
    # caught between fork and exec does not show DIR on its command line yet.
    for f in "$DIR"/pids/*.pid; do
      kill -0 "$(cat "$f")" 2>/dev/null ||
        die "$(basename "$f" .pid) exited while waiting for $what; see $DIR/logs/$(basename "$f" .pid).log"
    done
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep 0.5
  done
  log "ready: $what"
}

# absent KIND NAME: the API server answers, and the object is gone.
absent() {
  local out
  out=$("$KUBECTL" --kubeconfig="$DIR/kubeconfig" get "$1" "$2" --ignore-not-found -o name) || return 1
  [[ -z "$out" ]]
}

# has_rules KIND NAME: the (aggregated) role has at least one rule.
has_rules() {
  [[ -n "$("$KUBECTL" --kubeconfig="$DIR/kubeconfig" get "$1" "$2" -o jsonpath='{.rules[0]}')" ]]
}

cmd_down() {
  local pid name deadline
  STOPPED=()
  [[ -d "$DIR/pids" ]] || { log "nothing to stop in $DIR"; return 0; }
  # One at a time, in reverse start order: an API server whose etcd is
  # already gone hangs in its shutdown instead of exiting.
  for name in kube-controller-manager kube-apiserver etcd; do
    stop "$name"
  done
  # They were orphans: give init a moment to reap them, so no <defunct>
  # entries outlive `down` (bounded: some inits reap late or never).
  deadline=$((SECONDS + 5))
  for pid in "${STOPPED[@]}"; do
    while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
  done
  log "stopped ${#STOPPED[@]} processes in $DIR"
}

# wait_apiserver: until the API server at $APISERVER_URL answers /readyz.
wait_apiserver() {
  wait_for "kube-apiserver /readyz at $APISERVER_URL" \
    curl -fsS --cacert "$DIR/ca.crt" --cert "$DIR/pki/admin.crt" --key "$DIR/pki/admin.key" "$APISERVER_URL/readyz"
}

# stop NAME: SIGTERM one of our processes and wait for it to exit (SIGKILL after 15s).
stop() {
  local name=$1 f="$DIR/pids/$1.pid" pid deadline
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  if ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while ours "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if ours "$pid"; then
      log "$name (pid $pid) ignored SIGTERM for 15s; killing"
      kill -KILL "$pid" 2>/dev/null || true
      while ours "$pid"; do sleep 0.1; done
    fi
    STOPPED+=("$pid")
  fi
  rm -f "$f"
}

cmd_stop_apiserver() {
  STOPPED=()
  stop kube-apiserver
  log "kube-apiserver stopped"
}

cmd_start_apiserver() {
  local argv
  [[ -f "$DIR/apiserver.argv" ]] || die "no cluster was started in $DIR"
  mapfile -d '' argv <"$DIR/apiserver.argv"
  APISERVER_URL=$(cat "$DIR/apiserver-url")
  # Keep the earlier log: it shows how the first run ended.
  [[ -f "$DIR/logs/kube-apiserver.log" ]] && mv "$DIR/logs/kube-apiserver.log" "$DIR/logs/kube-apiserver.1.log"
  start kube-apiserver "${argv[@]}"
  wait_apiserver
  log "kube-apiserver serving again"
}

cmd_up() {
  local f
  if [[ -d "$DIR/pids" ]]; then
    for f in "$DIR"/pids/*.pid; do
      [[ -f "$f" ]] && ours "$(cat "$f")" && die "a cluster is already running in $DIR (run: $0 down $DIR)"
    done
  fi
  # Start from a clean state (old etcd data would carry old objects over).
  rm -rf "$DIR/pki" "$DIR/etcd-data" "$DIR/logs" "$DIR/pids" "$DIR/kcm-certs"
  mkdir -p "$DIR/logs" "$DIR/pids"
  PKI="$DIR/pki"

  # From here on any failure stops whatever was started.
  trap 'rc=$?; if ((rc != 0)); then log "up failed; stopping. Log tails:"; for l in "$DIR"/logs/*.log; do [[ -f "$l" ]] && { echo "--- $l" >&2; tail -n 15 "$l" >&2; }; done; cmd_down; fi' EXIT

  local bin=${DEFENDER_E2E_BIN_DIR:-}
  if [[ -z "$bin" ]]; then bin=$("$HERE/build-control-plane.sh" | tail -n1); fi
  for f in etcd kube-apiserver kube-controller-manager kubectl; do
    [[ -x "$bin/$f" ]] || die "$bin/$f missing (run tests/e2e/build-control-plane.sh)"
  done
  KUBECTL="$bin/kubectl"

  local etcd_port etcd_peer_port api_port kcm_port
  free_port etcd_port; free_port etcd_peer_port; free_port api_port; free_port kcm_port
  local etcd_url="http://127.0.0.1:$etcd_port"
  APISERVER_URL="https://127.0.0.1:$api_port"

  make_pki
  write_kubeconfig "$DIR/kubeconfig" defender-e2e-admin "$PKI/admin.crt" "$PKI/admin.key"
  write_kubeconfig "$PKI/controller-manager.kubeconfig" system:kube-controller-manager \
    "$PKI/controller-manager.crt" "$PKI/controller-manager.key"

  # etcd: single member, everything on loopback. No fsync: throwaway data,
  # and fsync latency is what makes etcd slow on a busy 2-core machine.
  start etcd "$bin/etcd" \
    --name=e2e \
    --data-dir="$DIR/etcd-data" \
    --listen-client-urls="$etcd_url" \
    --advertise-client-urls="$etcd_url" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster="e2e=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync \
    --log-level=warn
  wait_for "etcd at $etcd_url" curl -fsS "$etcd_url/health"

  # The endpoint reconciler (which publishes the advertise address as the
  # `kubernetes` Service's endpoints) refuses a loopback address and makes the
  # API server exit; nothing in these tests runs in-cluster, so turn it off.
  write_admission_config
  local apiserver=("$bin/kube-apiserver"
    --etcd-servers="$etcd_url"
    --bind-address=127.0.0.1
    --advertise-address=127.0.0.1
    --endpoint-reconciler-type=none
    --secure-port="$api_port"
    --cert-dir="$PKI"
    --tls-cert-file="$PKI/apiserver.crt"
    --tls-private-key-file="$PKI/apiserver.key"
    --client-ca-file="$DIR/ca.crt"
    --authorization-mode=Node,RBAC
    --service-cluster-ip-range="$SERVICE_CIDR"
    --service-account-issuer=https://kubernetes.default.svc
    --service-account-key-file="$PKI/sa.pub"
    --service-account-signing-key-file="$PKI/sa.key"
    --admission-control-config-file="$PKI/admission.yaml"
    --profiling=false)
  printf '%s\0' "${apiserver[@]}" >"$DIR/apiserver.argv"
  start kube-apiserver "${apiserver[@]}"
  wait_apiserver
  wait_for "namespace default" "$KUBECTL" --kubeconfig="$DIR/kubeconfig" get namespace default

  # With --use-service-account-credentials each controller runs as its own
  # kube-system service account, as in a real cluster.
  # --authentication-skip-lookup: there is no front proxy (requestheader CA),
  # and looking it up only fills the log with errors.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authentication-skip-lookup=true \
    --bind-address=127.0.0.1 \
    --secure-port="$kcm_port" \
    --cert-dir="$DIR/kcm-certs" \
    --leader-elect=false \
    --controllers="$CONTROLLERS" \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$DIR/ca.crt" \
    --profiling=false
  wait_for "kube-controller-manager /healthz" curl -fsSk "https://127.0.0.1:$kcm_port/healthz"

  # Prove the controllers work end to end: a new namespace gets its `default`
  # ServiceAccount (serviceaccount controller), and a deleted one disappears
  # (namespace controller finalizes it).
  local k=("$KUBECTL" --kubeconfig="$DIR/kubeconfig")
  local probe="e2e-probe-$RANDOM"
  wait_for "serviceaccount default/default" "${k[@]}" get serviceaccount default -n default
  "${k[@]}" create namespace "$probe" >/dev/null
  wait_for "serviceaccount $probe/default" "${k[@]}" get serviceaccount default -n "$probe"
  if [[ ,$CONTROLLERS, == *,clusterrole-aggregation-controller,* ]]; then
    wait_for "clusterrole edit aggregated" has_rules clusterrole edit
  fi
  "${k[@]}" delete namespace "$probe" --wait=false >/dev/null
  wait_for "namespace $probe deleted" absent namespace "$probe"

  echo "$APISERVER_URL" >"$DIR/apiserver-url"
  cat >"$DIR/env" <<EOF
export E2E_CLUSTER_DIR='$DIR'
export KUBECONFIG='$DIR/kubeconfig'
export E2E_APISERVER_URL='$APISERVER_URL'
export E2E_CA_CRT='$DIR/ca.crt'
export E2E_CA_KEY='$DIR/ca.key'
export E2E_BIN_DIR='$bin'
export E2E_ETCD_URL='$etcd_url'
EOF
  trap - EXIT
  log "cluster up"
  echo "kubeconfig: $DIR/kubeconfig"
  echo "apiserver:  $APISERVER_URL"
  echo "kubectl:    $KUBECTL"
}

usage() { echo "usage: $0 up|down|stop-apiserver|start-apiserver DIR" >&2; exit 2; }
(($# == 2)) || usage
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
case $1 in
  up) cmd_up ;;
  down) cmd_down ;;
  stop-apiserver) cmd_stop_apiserver ;;
  start-apiserver) cmd_start_apiserver ;;
  *) usage ;;
esac
