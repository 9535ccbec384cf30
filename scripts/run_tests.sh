#!/usr/bin/env bash
# The project's test command (the README's, and all CI runs): set up .venv with the test extras
# through the launcher, make sure a Chromium exists for the browser tests, then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# pip's output goes to .venv/setup.log; show its end when setup fails, since CI keeps no files.
python3 launcher.py setup --with-tests || { tail -n 40 .venv/setup.log >&2 || true; exit 1; }

if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Chromium for the browser tests…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "No system Chromium: trying Playwright's own browser." >&2
    .venv/bin/python -m playwright install chromium || echo "warning: no browser; the e2e tests will fail" >&2
  fi
fi

exec .venv/bin/python -m pytest "$@"
