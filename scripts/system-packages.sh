#!/usr/bin/env bash
# Install the Debian packages the real-window (Xvfb) tests need, when missing.
set -euo pipefail
need=()
for pkg in xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 \
           libgl1-mesa-dri libfontconfig1 libdbus-1-3 x11-utils; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
[ "${#need[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "ctstudio: the tests need these system packages: ${need[*]} (install them as root)" >&2
    exit 1
fi
echo "ctstudio: installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
