#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian's archive, for the browser test of the web demo
# (tests/test_gradio_app.py). Does nothing when both are installed; otherwise needs root and apt-get.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "chromium and chromedriver are missing and this is not root on Debian: install them" \
         "(Debian/Ubuntu: apt-get install chromium chromium-driver) for tests/test_gradio_app.py" >&2
    exit 1
fi
apt-get update -qq
# fonts-liberation: readable text in the test's screenshot on a machine with no fonts.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-liberation >/dev/null
