#!/bin/sh
# Install the headless browser of the browser tests (tests/browser/): Debian's Chromium, plus fonts
# so that screenshots are readable (Latin and CJK). Idempotent; installs only as root (otherwise it
# says so and exits 0, and the browser test skips).
#
# Playwright's own browser download (`playwright install`) is not used: the tests launch this
# Chromium with executable_path="/usr/bin/chromium".
set -eu

CHROMIUM=/usr/bin/chromium
PACKAGES="chromium fonts-dejavu-core fonts-noto-cjk"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $pkg"
    fi
done

if [ -x "$CHROMIUM" ] && [ -z "$missing" ]; then
    echo "install-browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    # Not fatal for a developer: the browser test then skips (and fails under CI=true).
    echo "install-browser: not root, so not installing:$missing (run 'sudo make browser')" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086  # one word per package
apt-get install -y --no-install-recommends $missing

if [ ! -x "$CHROMIUM" ]; then
    echo "install-browser: $CHROMIUM still missing after apt-get install" >&2
    exit 1
fi
echo "install-browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) installed"
