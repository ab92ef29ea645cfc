#!/usr/bin/env bash
# Builds the release tarball: target/dist/redis-patterns-<version>-<arch>-linux.tar.gz holding
# the module (full-LTO release build), the Lua twin (dist/patterns.lua, dist/scripts/),
# redis.conf (its loadmodule line pointing at the tarball's module), README.md and
# SHA256SUMS, for the machine's architecture. (No aarch64 build yet: see README, Operations.)
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

