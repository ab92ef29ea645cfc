#!/usr/bin/env bash
# The Node client's CI step (`make clients-node`): installs its packages from package-lock.json,
# builds, lints and runs the tests. The tests start their own servers and load the module from
# $PATTERNS_MODULE (the Makefile exports it).
set -euo pipefail
cd "$(dirname "$0")"

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "the Node client's tests need Node >= 20 (ioredis 6, node-redis 6, ESLint); found $(node --version)" >&2
  exit 1
fi

npm ci --no-audit --no-fund
npm run lint
npm test
