#!/usr/bin/env bash
# Builds the release tarball: target/dist/redis-patterns-<version>-<arch>-linux.tar.gz holding
# the module (full-LTO release build), the Lua twin (dist/patterns.lua, dist/scripts/),
# redis.conf (its loadmodule line pointing at the tarball's module), README.md and
# SHA256SUMS; one tarball per architecture. WITH_AARCH64=1 (`make dist-aarch64`) also
# cross-builds an aarch64 module when the Rust target and Debian's cross toolchain are
# installed (WITH_CROSS=1 scripts/install-deps.sh installs them), and checks it with readelf.
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

cargo build --release -p redis-patterns
cargo run --release -q -p patterns-core --bin patterns-lua -- dist >/dev/null
pack "$(uname -m)" "$target_dir/release/libredis_patterns.so"

if [ "${WITH_AARCH64:-0}" = 1 ]; then
  target=aarch64-unknown-linux-gnu
  if ! rustup target list --installed | grep -qx "$target" \
     || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    echo "aarch64: the Rust target or aarch64-linux-gnu-gcc is missing" \
         "(WITH_CROSS=1 bash scripts/install-deps.sh, then rustup target add $target)" >&2
    exit 1
  fi
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
  BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu" \
    cargo build --release -p redis-patterns --target "$target"
  module="$target_dir/$target/release/libredis_patterns.so"
  machine=$(readelf -h "$module" | sed -n 's/^ *Machine: *//p')
  [ "$machine" = "AArch64" ] || { echo "aarch64: readelf says $machine" >&2; exit 1; }
  pack aarch64 "$module"
fi
