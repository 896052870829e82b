#!/usr/bin/env bash
# Builds Defender's container image without a container engine and saves it
# as a tarball (`docker load`, `podman load` and `crane push` read it):
#
#   bash image/build.sh                       # -> $CARGO_TARGET_DIR/defender-image.tar
#   bash image/build.sh /tmp/defender.tar
#   crane push "$(bash image/build.sh | tail -n 1)" ghcr.io/defender-dev/defender:0.1.0
#
# The image is what the Dockerfile builds: the static release binary as
# /defender and an empty /tmp (mode 1777), both owned by root, on no base at
# all; user 65532:65532, entrypoint /defender, command `serve`, port 8443,
# and the OCI labels below. The binary is the release build the soak uses
# (.ci/release-build.sh), so CI compiles it once.
#
# crane (go-containerregistry) is installed once into ~/.cache/defender-tools.
# It edits an image's configuration only in a registry, so the script runs
# one of its own on 127.0.0.1 for the duration, in memory.
# The last line printed is the tarball's path.
set -euo pipefail
cd "$(dirname "$0")/.."

# The name deploy/base names (tests/deploy.rs keeps them equal).
REPOSITORY=ghcr.io/defender-dev/defender
CRANE_VERSION=v0.22.1
OUTPUT=$(realpath -m "${1:-${CARGO_TARGET_DIR:-target}/defender-image.tar}")

log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

source .ci/go-tool.sh
source .ci/release-build.sh
CRANE=$(go_tool github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION" \
  "${DEFENDER_TOOLS_CACHE:-$HOME/.cache/defender-tools}")

# The labels' values, from Cargo.toml.
{ read -r VERSION; read -r LICENSE; read -r SOURCE; } < <(python3 -c '
import tomllib
package = tomllib.load(open("Cargo.toml", "rb"))["package"]
print(package["version"], package["license"], package["repository"], sep="\n")')
case $(uname -m) in
  x86_64) ARCH=amd64 ;;
  aarch64) ARCH=arm64 ;;
  *) echo "no image architecture known for $(uname -m)" >&2; exit 1 ;;
esac

log "release build (shared with the soak)"
BINARY=$(release_binary)

WORK=$(mktemp -d -t defender-image-XXXX)
REGISTRY_PID=""
cleanup() {
  [[ -z $REGISTRY_PID ]] || kill "$REGISTRY_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The one layer: fixed owners, modes and times, so the same binary always
# makes the same layer.
mkdir -p "$WORK/rootfs/tmp"
chmod 1777 "$WORK/rootfs/tmp"
install -m 0555 "$BINARY" "$WORK/rootfs/defender"
tar --create --file "$WORK/layer.tar" --directory "$WORK/rootfs" \
  --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 defender tmp

"$CRANE" registry serve --address 127.0.0.1:0 >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
PORT=""
for _ in $(seq 100); do
  PORT=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$WORK/registry.log")
  [[ -n $PORT ]] && break
  kill -0 "$REGISTRY_PID" 2>/dev/null || break
  sleep 0.1
done
[[ -n $PORT ]] || { cat "$WORK/registry.log" >&2; echo "the local registry did not start" >&2; exit 1; }
LOCAL=127.0.0.1:$PORT/defender:$VERSION

log "image $REPOSITORY:$VERSION (linux/$ARCH)"
crane_failed() { cat "$WORK/crane.log" >&2; exit 1; }
"$CRANE" append --oci-empty-base --new_layer "$WORK/layer.tar" --new_tag "$LOCAL" \
  2>>"$WORK/crane.log" >/dev/null || crane_failed
mkdir -p "$(dirname "$OUTPUT")"
"$CRANE" mutate "$LOCAL" --set-platform "linux/$ARCH" \
  --user 65532:65532 --entrypoint /defender --cmd serve --exposed-ports 8443/tcp \
  --label "org.opencontainers.image.title=defender" \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.source=$SOURCE" \
  --label "org.opencontainers.image.licenses=$LICENSE" \
  --tag "$REPOSITORY:$VERSION" --output "$OUTPUT" 2>>"$WORK/crane.log" >/dev/null || crane_failed
log "saved: $OUTPUT ($(du -h "$OUTPUT" | cut -f1))"
echo "$OUTPUT"
