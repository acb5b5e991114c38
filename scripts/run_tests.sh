#!/usr/bin/env bash
# The full test suite, as CI runs it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -ra --timeout=1800 "$@"
