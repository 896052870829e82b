# Sourced by the scripts that need Defender's release binary: the soak
# (bench/soak.sh) and the container image (image/build.sh). Both take the
# same build, so CI compiles the release profile once, into the
# CARGO_TARGET_DIR the caller chose.
#
# The binary is linked statically (glibc's crt-static) so that the image
# needs no base layer: it holds this one file. Since glibc 2.34 the DNS and
# /etc/hosts lookups are part of libc itself, so a static binary resolves
# names without the shared NSS modules.

# release_binary: builds the static release binary for this machine's
# architecture and prints its path.
release_binary() {
  local triple
  triple=$(rustc -vV | sed -n 's/^host: //p')
  # With --target, RUSTFLAGS apply to Defender's code only, not to build
  # scripts and proc-macros (which cannot be static).
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet --locked \
    --target "$triple" --bin defender >&2
  echo "${CARGO_TARGET_DIR:-target}/$triple/release/defender"
}
