#!/bin/sh
# The project's test command (README line 2; .ci/run runs exactly this).
# Makes its own virtual environment, installs the package with its test extras, then runs pytest.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest -q "$@"
