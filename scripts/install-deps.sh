#!/usr/bin/env bash
# Install the Debian packages callrec's bench and tools need, only those missing.
# debootstrap builds the Asterisk chroot; sip-tester is SIPp; sox and espeak-ng make audio;
# tcpdump times the first RTP packet in the benchmark (bench/rtp.py); chromium runs the archive web
# UI test (Playwright drives /usr/bin/chromium: its own browser download cannot reach its host);
# baresip-core is the demo's agent phone (testbench/baresip.py: it idles, SIPp polls); nginx-light
# and openssl run the TLS reverse proxy the README recommends in front of the web UI, in its test;
# fonts-ipafont-gothic lets that browser draw the Japanese UI (screenshots in the test logs).
# postgresql runs the catalog's tests on a server of the tests' own (testbench/postgres.py): no
# cluster of Debian's own is made or started (createcluster.d below).
# promtool checks the shipped alert rules: taken out of Debian's prometheus package without
# installing it (that would start a Prometheus server on the developer's machine).
set -euo pipefail
PROMTOOL_DIR=/var/cache/callrec/promtool
fetch_promtool() {
    [ -x "$PROMTOOL_DIR/promtool" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: promtool missing; run as root (make deps fetches it into $PROMTOOL_DIR)" >&2
        return 1
    fi
    local work
    work=$(mktemp -d)
    (cd "$work" && apt-get download -q prometheus 2>/dev/null || { apt-get update -q && apt-get download -q prometheus; })
    dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
    mkdir -p "$PROMTOOL_DIR"
    install -m 0755 "$work/x/usr/bin/promtool" "$PROMTOOL_DIR/promtool"
    rm -rf "$work"
}
packages=(debootstrap sip-tester sox espeak-ng ca-certificates tcpdump chromium baresip-core
          nginx-light openssl fonts-ipafont-gothic postgresql)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    fetch_promtool
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
# Debian's postgresql-common makes and starts a "main" cluster on install unless told not to.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/callrec.conf
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
fetch_promtool
