#!/usr/bin/env bash
# The full test suite, as CI runs it: unit tests, then nbval over the book's chapters (each chapter is executed
# and the cells tagged nbval-check-output must reproduce their stored outputs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -ra --timeout=1800 tests book --nbval-lax \
  --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider "$@"
