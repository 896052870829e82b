# Sourced by the scripts that run a tool installed with `go install` (helm, crane).
# A fresh machine has none of them: the first run builds each from the Go
# module proxy into a cache outside the repository, later runs reuse it.

# go_tool PACKAGE VERSION CACHE: prints the path of the binary PACKAGE builds
# (named like its last path element), installing it at VERSION into CACHE/bin
# first when it is missing or another version. The version is read from the
# binary's own build information, so a stale binary is never taken for the
# pinned one.
go_tool() {
  local package=$1 version=$2 cache=$3
  local binary=$cache/bin/${package##*/}
  if [[ -x $binary ]] && go version -m "$binary" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]].*[[:space:]]$version([[:space:]]|$)"; then
    echo "$binary"
    return
  fi
  if ! command -v go >/dev/null; then
    echo "go_tool: installing $package needs the Go toolchain (https://go.dev/dl/), and none is on PATH" >&2
    return 1
  fi
  echo "installing $package $version into $cache (once; later runs reuse it)" >&2
  mkdir -p "$cache/bin"
  # CGO off: a static binary that runs wherever the cache is copied.
  GOBIN=$cache/bin CGO_ENABLED=0 go install -trimpath -ldflags='-s -w' "$package@$version" >&2
  echo "$binary"
}
