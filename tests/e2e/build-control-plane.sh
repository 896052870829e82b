#!/usr/bin/env bash
# Build the Kubernetes control-plane binaries the end-to-end tests need
# (etcd, kube-apiserver, kube-controller-manager, kubectl) from their Go
# modules, into a cache directory keyed by the Kubernetes version:
#
#   ${DEFENDER_E2E_CACHE:-$HOME/.cache/defender-e2e}/<k8s-version>/bin/
#
# No release tarballs, no Docker: only the Go module proxy is reachable here.
# Idempotent: when all four binaries are already present it exits at once.
# Prints the bin directory as the last line of stdout, so callers can do
#   BIN=$(tests/e2e/build-control-plane.sh | tail -n1)
set -euo pipefail

# Pinned Kubernetes release. etcd's version is NOT pinned here: it is read from
# this release's go.mod (go.etcd.io/etcd/server/v3), i.e. the etcd the release
# itself is built and tested against.
K8S_VERSION=${DEFENDER_K8S_VERSION:-v1.37.2}
CACHE_ROOT=${DEFENDER_E2E_CACHE:-$HOME/.cache/defender-e2e}
BIN_DIR="$CACHE_ROOT/$K8S_VERSION/bin"
# 2 cores, and somebody may be running cargo beside us: keep go's package
# parallelism small and run at low CPU priority.
BUILD_JOBS=${DEFENDER_E2E_BUILD_JOBS:-2}
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)

log() { printf '[build-control-plane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

have_all() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
}

if have_all; then
  log "cached: $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

command -v go >/dev/null || { log "go not found on PATH"; exit 1; }
mkdir -p "$BIN_DIR"

# Serialise concurrent callers (e.g. two test runs) on one lock per version;
# the second one waits, then finds the binaries and exits.
exec 9>"$CACHE_ROOT/$K8S_VERSION/.build.lock"
flock 9
if have_all; then
  log "cached (built by a concurrent run): $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/defender-e2e-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Modules are resolved in throwaway go.mod files: -mod=mod lets `go build`
# add the missing requirements/go.sum lines itself. GOWORK=off so no go.work
# above $TMPDIR interferes. CGO off and these tags mirror upstream's release
# builds (hack/lib/golang.sh): static binaries, no C toolchain needed.
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GOWORK=off
export CGO_ENABLED=0
GO_BUILD=(nice -n 10 go build -p "$BUILD_JOBS" -trimpath -tags=selinux,notest,grpcnotrace)

T0=$SECONDS
step_start=$SECONDS
step_done() { log "$1 took $((SECONDS - step_start))s"; step_start=$SECONDS; }

log "downloading k8s.io/kubernetes@$K8S_VERSION"
K8S_DIR=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[[ -f "$K8S_DIR/go.mod" ]] || { log "could not locate downloaded k8s.io/kubernetes module"; exit 1; }
step_done "download"

# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...)
# at v0.0.0 and replaces them with ./staging/src/...; those replaces do not
# apply to us, so point each one at its published v0.<minor>.<patch> tag.
# The list comes from the release's own go.mod (both one-line and block form).
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
mapfile -t STAGING < <(awk '
  $1 == "replace" && $3 == "=>" && $4 ~ /^\.\/staging\// { print $2; next }
  $2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$K8S_DIR/go.mod")
(( ${#STAGING[@]} > 0 )) || { log "no staging replaces found in $K8S_DIR/go.mod"; exit 1; }
log "${#STAGING[@]} staging modules -> $STAGING_VERSION"

GO_DIRECTIVE=$(awk '$1 == "go" { print $2; exit }' "$K8S_DIR/go.mod")
# Keep the release's GODEBUG defaults: they follow the main module's go.mod.
GODEBUG_LINES=$(grep -E '^godebug ' "$K8S_DIR/go.mod" || true)

mkdir -p "$WORK/k8s"
{
  echo "module defender.local/e2e-control-plane"
  echo
  echo "go $GO_DIRECTIVE"
  [[ -n "$GODEBUG_LINES" ]] && printf '\n%s\n' "$GODEBUG_LINES"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  for m in "${STAGING[@]}"; do printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"; done
  echo ")"
} >"$WORK/k8s/go.mod"

# Stamp the version the way upstream does, so /version and `kubectl version`
# report the real release instead of v0.0.0-master.
MINOR=${K8S_VERSION#v1.}; MINOR=${MINOR%%.*}
BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$MINOR"
  LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
done

# One `go build` for the three: they share most packages, and a single
# invocation compiles each of them once.
log "building kube-apiserver, kube-controller-manager, kubectl (several minutes)"
mkdir -p "$WORK/out"
(cd "$WORK/k8s" && "${GO_BUILD[@]}" -ldflags="$LDFLAGS" -o "$WORK/out/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl)
step_done "kubernetes build"

# etcd: the server module (go.etcd.io/etcd/server/v3) has `package main` at its
# root in 3.5, 3.6 and 3.7. Its go.mod has relative replaces, so
# `go install ...@version` refuses it; build it from its own throwaway module
# instead (separate from the kubernetes one so that etcd gets the dependency
# versions it was released with, not kubernetes' newer ones).
ETCD_VERSION=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$K8S_DIR/go.mod")
[[ -n "$ETCD_VERSION" ]] || { log "etcd server version not found in $K8S_DIR/go.mod"; exit 1; }
log "building etcd $ETCD_VERSION"
mkdir -p "$WORK/etcd"
cat >"$WORK/etcd/go.mod" <<EOF
module defender.local/e2e-etcd

go $GO_DIRECTIVE

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
(cd "$WORK/etcd" && "${GO_BUILD[@]}" -ldflags="-s -w" -o "$WORK/out/etcd" go.etcd.io/etcd/server/v3)
step_done "etcd build"

# Move into place only when everything built, so a half-finished run never
# looks like a cache hit.
for b in "${BINARIES[@]}"; do mv -f "$WORK/out/$b" "$BIN_DIR/$b"; done
printf 'kubernetes %s\netcd %s\nbuilt %s with %s\n' "$K8S_VERSION" "$ETCD_VERSION" \
  "$BUILD_DATE" "$(go version)" >"$CACHE_ROOT/$K8S_VERSION/VERSIONS"
log "done in $((SECONDS - T0))s: $BIN_DIR"
echo "$BIN_DIR"
