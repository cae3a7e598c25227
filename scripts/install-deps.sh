#!/usr/bin/env bash
# Install the Debian packages callrec's bench and tools need, only those missing.
# debootstrap builds the Asterisk chroot; sip-tester is SIPp; sox and espeak-ng make audio;
# tcpdump times the first RTP packet in the benchmark (bench/rtp.py); chromium runs the archive web
# UI test (Playwright drives /usr/bin/chromium: its own browser download cannot reach its host);
# baresip-core is the demo's agent phone (testbench/baresip.py: it idles, SIPp polls); nginx-light
# and openssl run the TLS reverse proxy the README recommends in front of the web UI, in its test;
# fonts-ipafont-gothic lets that browser draw the Japanese UI (screenshots in the test logs).
set -euo pipefail
packages=(debootstrap sip-tester sox espeak-ng ca-certificates tcpdump chromium baresip-core
          nginx-light openssl fonts-ipafont-gothic)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
