# Sourced by the scripts that run a tool built with `go install` (crane, for
# the container image). Like cargo-tool.sh: the first run installs the tool
# into a cache outside the repository, later runs reuse it.

# go_tool PACKAGE VERSION CACHE: prints the path of the binary `go install
# PACKAGE@VERSION` makes (named like the package's last element), installing
# it into CACHE/bin first when it is missing or another version.
go_tool() {
  local package=$1 version=$2 cache=$3
  local binary=$cache/bin/${package##*/}
  if [[ -x $binary ]] && [[ $(go version -m "$binary" 2>/dev/null | awk '$1 == "mod" {print $3}') == "$version" ]]; then
    echo "$binary"
    return
  fi
  command -v go >/dev/null || { echo "Go is needed to install ${package##*/}" >&2; return 1; }
  echo "installing ${package##*/} $version into $cache (once; later runs reuse it)" >&2
  GOBIN=$cache/bin go install "$package@$version" >&2
  echo "$binary"
}
