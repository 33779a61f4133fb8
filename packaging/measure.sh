#!/usr/bin/env bash
# Size and start-up time of the standalone bundles (after packaging/build.sh), for packaging/README.md.
#
#   packaging/measure.sh [RUNS]     # default 5 warm runs each
#
# Start-up time = from the command to the main window shown and painted, offscreen
# (CTSTUDIO_SELFTEST=shown quits right then). "cold": the bundle's files are first dropped from the
# page cache (posix_fadvise DONTNEED on each file, so only this bundle is evicted, not the machine's
# cache), as after a reboot or on first use; "warm": run again straight after. The source install
# (.venv/bin/ctstudio) is measured the same way as the reference. Needs hyperfine (apt-get install hyperfine).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs=${1:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export QT_QPA_PLATFORM=offscreen CTSTUDIO_SETTINGS="$tmp/settings.ini" CTSTUDIO_SELFTEST=shown
evict() {  # evict "$@" (folders) from the page cache
    python3 - "$@" <<'EOF'
import os, sys
for top in sys.argv[1:]:
    for d, _, files in os.walk(top):
        for f in files:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                fd = os.open(p, os.O_RDONLY)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)
EOF
}

echo "| build | size (du -sh) | files | cold start to shown window | warm (mean +- sd, $runs runs) |"
echo "|---|---|---|---|---|"
for spec in "dist/ctstudio-reader|dist/ctstudio-reader/ctstudio" "dist/ctstudio|dist/ctstudio/ctstudio" \
            "source .venv|.venv/bin/ctstudio"; do
    name=${spec%%|*} exe=${spec#*|}
    [ -x "$exe" ] || { echo "| $name | missing: build it first | | | |"; continue; }
    if [ "$name" = "source .venv" ]; then
        dirs=(.venv ctstudio); size="$(du -sh .venv | cut -f1) (.venv)"; files=$(find .venv -type f | wc -l)
    else
        dirs=("$name"); size=$(du -sh "$name" | cut -f1); files=$(find "$name" -type f | wc -l)
    fi
    cold=()
    for i in 1 2 3; do
        evict "${dirs[@]}"
        t0=$(date +%s.%N); "$exe" >/dev/null 2>&1; t1=$(date +%s.%N)
        cold+=("$(python3 -c "print(f'{$t1 - $t0:.2f}')")")
    done
    warm=$(hyperfine --warmup 1 --runs "$runs" --export-json "$tmp/h.json" "$exe" >/dev/null 2>&1 &&
           python3 -c "import json; r=json.load(open('$tmp/h.json'))['results'][0]; print(f\"{r['mean']:.2f} +- {r['stddev']:.2f} s\")")
    echo "| $name | $size | $files | ${cold[*]} s | $warm |"
done
echo
echo "load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
