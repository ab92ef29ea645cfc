#!/usr/bin/env bash
# Builds the release tarballs: target/dist/redis-patterns-<version>-<arch>-linux.tar.gz holding
# the module (full-LTO release build), the Lua twin (dist/patterns.lua, dist/scripts/),
# redis.conf (its loadmodule line pointing at the tarball's module), README.md and
# SHA256SUMS: one for the machine's architecture and, on x86_64, one for aarch64, cross-built
# with rustup's aarch64-unknown-linux-gnu target and Debian's cross toolchain
# (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross), which this script installs when missing
# (only here: `make test` never needs them). DIST_AARCH64=0 skips the aarch64 tarball.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
target_dir=${CARGO_TARGET_DIR:-target}
out=$target_dir/dist
mkdir -p "$out"

# One tarball: $1 the architecture's name, $2 the built module.
pack() {
  local arch=$1 module=$2
  local name="redis-patterns-${version}-${arch}-linux"
  local stage="$out/$name"
  rm -rf "$stage"
  mkdir -p "$stage/scripts"
  cp "$module" "$stage/libredis_patterns.so"
  cp dist/patterns.lua "$stage/"
  cp dist/scripts/*.lua "$stage/scripts/"
  sed 's#^loadmodule .*#loadmodule ./libredis_patterns.so#' redis.conf > "$stage/redis.conf"
  cp README.md "$stage/"
  (cd "$stage" && find . -type f ! -name SHA256SUMS | sort | sed 's#^\./##' \
    | xargs sha256sum > SHA256SUMS)
  tar -C "$out" -czf "$out/$name.tar.gz" "$name"
  (cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
  rm -rf "$stage"
  echo "$out/$name.tar.gz"
}

# The cross toolchain for aarch64: rustup's target, Debian's gcc and libc for arm64.
install_aarch64_toolchain() {
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu
  local need=()
  command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
  dpkg -s libc6-dev-arm64-cross >/dev/null 2>&1 || need+=(libc6-dev-arm64-cross)
  [ ${#need[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
}

# The module for aarch64: linked by the cross gcc; redis-module's build script compiles its C
# shim with the cross gcc and runs bindgen (libclang) against the arm64 sysroot.
build_aarch64() {
  local triple=aarch64-unknown-linux-gnu sysroot=/usr/aarch64-linux-gnu
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=$sysroot -I$sysroot/include" \
    cargo build --release -p redis-patterns --target "$triple"
  local so="$target_dir/$triple/release/libredis_patterns.so"
  if ! readelf -h "$so" | grep -q 'Machine:.*AArch64'; then
    echo "dist: $so is not an AArch64 shared object:" >&2
    readelf -h "$so" >&2
    return 1
  fi
  echo "$so"
}

cargo build --release -p redis-patterns
cargo run --release -q -p patterns-core --bin patterns-lua -- dist >/dev/null
pack "$(uname -m)" "$target_dir/release/libredis_patterns.so"
if [ "$(uname -m)" = x86_64 ] && [ "${DIST_AARCH64:-1}" != 0 ]; then
  install_aarch64_toolchain
  so=$(build_aarch64)
  pack aarch64 "$so"
fi

