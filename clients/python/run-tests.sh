#!/usr/bin/env bash
# The Python client's checks, as `make clients-python` runs them: a venv in clients/python/.venv
# (made when missing), the package installed with its test extras, then ruff, mypy, a wheel
# holding the bundled twin, and pytest. The tests need redis-server, valkey-server and the
# module ($PATTERNS_MODULE, else target/release/libredis_patterns.so).
set -euo pipefail
cd "$(dirname "$0")"

# Any python3 >= 3.9 works: pyenv's, or Debian's with python3-venv (scripts/install-deps.sh).
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv; then
    rm -rf .venv
    echo "run-tests.sh: '$PYTHON -m venv' failed; install python3-venv (scripts/install-deps.sh)" >&2
    exit 1
  fi
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --disable-pip-version-check -e '.[test]'

"$VPY" -m ruff check .
"$VPY" -m ruff format --check .
if "$VPY" -c 'import mypy' 2>/dev/null; then
  "$VPY" -m mypy
else
  echo "run-tests.sh: mypy (pinned, Python >= 3.10) is not installed for this Python: typing not checked"
fi

# The wheel must carry the twin and the typing marker.
rm -rf build/wheel
"$VPY" -m pip wheel -q --no-deps --no-build-isolation -w build/wheel . >/dev/null
"$VPY" - <<'PY'
import glob, zipfile
names = zipfile.ZipFile(glob.glob("build/wheel/redis_patterns-*.whl")[0]).namelist()
missing = {"redis_patterns/patterns.lua", "redis_patterns/py.typed"} - set(names)
assert not missing, f"the wheel lacks {missing}"
PY
rm -rf build

"$VPY" -m pytest -q "$@"
