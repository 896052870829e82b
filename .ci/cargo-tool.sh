# Sourced by the scripts that run a tool installed with `cargo install`
# (oha, cargo-fuzz, cargo-deny). A fresh machine has none of them: the first
# run installs each into a cache outside the repository, later runs reuse it.

# cargo_tool CRATE CACHE [VERSION]: prints the path of the binary CRATE
# installs (named like the crate), installing CRATE (at VERSION, if given)
# into CACHE first when it is missing or another version.
cargo_tool() {
  local crate=$1 cache=$2 version=${3:-}
  local binary=$cache/bin/$crate
  if [[ -x $binary ]] && { [[ -z $version ]] || [[ $("$binary" --version 2>/dev/null) == *" $version" ]]; }; then
    echo "$binary"
    return
  fi
  echo "installing $crate${version:+ $version} into $cache (once; later runs reuse it)" >&2
  cargo install --locked --quiet --root "$cache" "$crate${version:+@$version}" >&2
  echo "$binary"
}
