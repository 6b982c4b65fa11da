#!/bin/sh
# Install the forward proxy of the network tests (tests/test_network.py, tests/proxies.py): Debian's
# tinyproxy. Idempotent; installs only as root (otherwise it says so and exits 0, and the proxy tests
# skip; under CI=true they fail instead).
#
# The tests start their own tinyproxy on a free loopback port with a config of their own, so no
# system service may be started or left running. Debian ships the bare binary as `tinyproxy-bin`
# (no init script, no unit, no daemon user): that is what is installed. Where it does not exist
# (older releases), the full `tinyproxy` package is installed with service starts refused by a
# temporary /usr/sbin/policy-rc.d (an existing one is left as it is), and its service stopped after.
set -eu

TINYPROXY=/usr/bin/tinyproxy

if [ -x "$TINYPROXY" ]; then
    echo "install-proxy: $("$TINYPROXY" -v 2>/dev/null || echo tinyproxy) already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    # Not fatal for a developer: the proxy tests then skip (and fail under CI=true).
    echo "install-proxy: not root, so not installing tinyproxy (run 'sudo make proxy')" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update

if apt-cache show tinyproxy-bin >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends tinyproxy-bin
else
    POLICY=/usr/sbin/policy-rc.d
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\n# install-proxy.sh: no service starts while tinyproxy installs\nexit 101\n' >"$POLICY"
        chmod 755 "$POLICY"
        trap 'rm -f "$POLICY"' EXIT
    fi
    apt-get install -y --no-install-recommends tinyproxy
    # Belt and braces: a service started despite the policy is stopped and not started at boot.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now tinyproxy >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
        service tinyproxy stop >/dev/null 2>&1 || true
    fi
fi

if [ ! -x "$TINYPROXY" ]; then
    echo "install-proxy: $TINYPROXY still missing after apt-get install" >&2
    exit 1
fi
echo "install-proxy: $("$TINYPROXY" -v 2>/dev/null || echo tinyproxy) installed"
