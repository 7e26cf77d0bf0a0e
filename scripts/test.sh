#!/bin/sh
# The project's test command (README line 2; .ci/run runs exactly this).
# Makes its own virtual environment, installs the package with its test extras, builds the
# UML oracle kernels when they are not cached yet, then runs pytest.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# Oracle kernels (UML, refcount and strdup, for every release of src/anonvma/releases.py),
# cached under ${XDG_CACHE_HOME:-~/.cache}/anonvma/oracle: a no-op once built; cold, each took
# 211-398 s on 2 cores, about 43 minutes for all ten (`anonvma oracle status` prints each).
# When they cannot be built, go on: the oracle tests skip and say why.
# ANONVMA_ORACLE_BUILD=0 skips the attempt.
if [ "${ANONVMA_ORACLE_BUILD:-1}" != 0 ]; then
    if ! .venv/bin/anonvma oracle build --linux all --variant all; then
        echo "scripts/test.sh: oracle kernels not built (see above); oracle tests will skip" >&2
    fi
fi
# git for tests/test_oracle_source.py (a kernel history to `git bisect run`): a fresh Debian
# has none; as root, apt-get installs it (after apt-get update when the lists are missing).
# Without it that test skips and says why. ANONVMA_ORACLE_BUILD=0 skips this too.
if [ "${ANONVMA_ORACLE_BUILD:-1}" != 0 ] && ! command -v git >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q git >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
        apt-get install -y -q git >/dev/null 2>&1; } ||
        echo "scripts/test.sh: could not install git; the bisect test will skip" >&2
fi
# Prometheus for tests/test_fleet_export.py, which starts a real server on a loopback port:
# when no `prometheus` is on PATH, unpack Debian's `prometheus` package into
# ${XDG_CACHE_HOME:-~/.cache}/anonvma/prometheus (apt-get download + dpkg-deb -x: no root
# needed, no service installed or started; a no-op once there). Without it that test skips
# and says why. ANONVMA_PROMETHEUS_FETCH=0 skips the attempt.
if [ "${ANONVMA_PROMETHEUS_FETCH:-1}" != 0 ]; then
    if ! .venv/bin/python tests/prometheus_helpers.py >/dev/null; then
        echo "scripts/test.sh: no Prometheus (see above); the Prometheus export test will skip" >&2
    fi
fi
# The static checks the project claims: ruff and mypy --strict (their settings are in
# pyproject.toml; both come with the test extras installed above). A finding stops here.
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy --strict
exec .venv/bin/python -m pytest -q "$@"
