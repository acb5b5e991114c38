#!/usr/bin/env bash
# The full test suite, as CI runs it: unit tests, the browser check of the rendered book, then nbval over the
# chapters (each chapter is executed and the cells tagged nbval-check-output must reproduce their stored
# outputs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser check needs Debian's Chromium, the RAR extraction test Debian's unar (Flickr100k ships as RAR);
# install them where we can (CI runs as root), else those tests skip and say why.
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v unar >/dev/null 2>&1 || missing="$missing unar"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing Debian packages:$missing"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
    || echo "[test] could not install$missing; the tests that need them will skip"
fi
exec .venv/bin/python -m pytest -ra --durations=40 --timeout=1800 -p no:cacheprovider tests book --nbval-lax \
  --nbval-sanitize-with book/nbval_sanitize.cfg "$@"
