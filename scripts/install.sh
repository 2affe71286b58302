#!/usr/bin/env bash
# Creates .venv in the repository root and installs everything the project, its tests and its
# metrics need, offline assets included. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# The browser test's system packages install (apt) while pip works: when possible, else the test fails saying so.
browser_log=$(mktemp)
bash scripts/install_browser.sh >"$browser_log" 2>&1 &
browser=$!
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" -r requirements.txt
"${pip[@]}" --no-deps -r requirements-nodeps.txt
"${pip[@]}" --no-deps -e .
.venv/bin/python scripts/prepare_assets.py
if ! wait "$browser"; then
    cat "$browser_log" >&2
    echo "install.sh: no browser installed; tests/test_gradio_app.py will fail" >&2
fi
rm -f "$browser_log"
