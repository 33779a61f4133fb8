#!/usr/bin/env bash
# A screenshot of a bundled ctstudio window on the sample volume, under its own Xvfb (real X, xcb).
#
#   packaging/screenshot.sh OUT.png [BUNDLE] [SECONDS]
#       BUNDLE: dist/ctstudio-reader (default) or dist/ctstudio; SECONDS to wait before the shot (20)
#
# Xvfb picks a free display itself (-displayfd), so the shot never lands on another X server.
# Needs: apt-get install -y xvfb imagemagick. Only the processes started here are stopped.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out=$(realpath -m "$1") bundle=${2:-dist/ctstudio-reader} secs=${3:-20}
cd "$root"
tmp=$(mktemp -d)
Xvfb -displayfd 3 -screen 0 1600x1000x24 -nolisten tcp 3>"$tmp/display" >/dev/null 2>&1 &
xvfb=$!
for _ in $(seq 50); do [ -s "$tmp/display" ] && break; sleep 0.1; done
display=":$(cat "$tmp/display")"
DISPLAY=$display QT_QPA_PLATFORM=xcb CTSTUDIO_SETTINGS="$tmp/settings.ini" \
    "$bundle/ctstudio" "$bundle/_internal/resources/sample/headsq_hu.nii.gz" >"$tmp/app.log" 2>&1 &
app=$!
sleep "$secs"
DISPLAY=$display import -window root "$out"
alive=yes; kill -0 $app 2>/dev/null || alive=no
kill $app 2>/dev/null || true; sleep 1; kill -9 $app 2>/dev/null || true
kill $xvfb 2>/dev/null || true
wait 2>/dev/null || true
echo "screenshot: $out (display $display, app still running: $alive)"
cat "$tmp/app.log" >&2
rm -rf "$tmp"
[ $alive = yes ]
