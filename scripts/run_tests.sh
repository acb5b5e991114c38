#!/usr/bin/env bash
# The full test suite, as CI runs it: unit tests, the browser check of the rendered book, then nbval over the
# chapters (each chapter is executed and the cells tagged nbval-check-output must reproduce their stored
# outputs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser check needs Debian's Chromium; install it where we can (CI runs as root), else that test skips.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing Debian's chromium for the browser check"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "[test] could not install chromium; the browser check will skip"
fi
exec .venv/bin/python -m pytest -ra --timeout=1800 -p no:cacheprovider tests book --nbval-lax \
  --nbval-sanitize-with book/nbval_sanitize.cfg "$@"
