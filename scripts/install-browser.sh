#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its WebDriver (chromedriver) for the dashboard's
# browser test (crates/dashboard/tests/browser.rs), if they are missing. Needs root (CI is) or sudo.
#   scripts/install-browser.sh
# The test itself fails with a clear message when they are missing, unless MPICR_SKIP_BROWSER=1.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if have chromium && have chromedriver; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif have sudo; then
    SUDO=(sudo)
else
    echo "install-browser.sh: chromium and chromedriver are missing and this is not root; run as root or set MPICR_SKIP_BROWSER=1" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
have chromium && have chromedriver || {
    echo "install-browser.sh: chromium or chromedriver still missing after apt-get install" >&2
    exit 1
}
echo "install-browser.sh: $(chromium --version 2>/dev/null || echo chromium) and $(chromedriver --version 2>/dev/null | head -1) installed"
