#!/usr/bin/env bash
# Size and start-up time of the standalone bundles (after packaging/build.sh), for packaging/README.md.
#
#   packaging/measure.sh [RUNS]     # default: 3 cold and 5 warm starts of each
#
# Start-up time = from starting the command to the main window shown and painted, offscreen: the app
# runs with CTSTUDIO_SELFTEST=shown, which prints "selftest: window shown" at its first paint; the time
# is taken here when that line arrives (the process is then stopped; its exit is not counted).
# "cold": the build's files are dropped from the page cache first (posix_fadvise DONTNEED on each file,
# so only these files are evicted, not the machine's cache), as on first use after a reboot; "warm":
# started again straight after. The source install (.venv/bin/ctstudio) is measured the same way.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs=${1:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export QT_QPA_PLATFORM=offscreen CTSTUDIO_SETTINGS="$tmp/settings.ini" CTSTUDIO_SELFTEST=shown
python3 - "$runs" <<'EOF'
import os, statistics, subprocess, sys, time

runs = int(sys.argv[1])
BUILDS = [("dist/ctstudio-reader", "dist/ctstudio-reader/ctstudio", ["dist/ctstudio-reader"]),
          ("dist/ctstudio", "dist/ctstudio/ctstudio", ["dist/ctstudio"]),
          ("source .venv", ".venv/bin/ctstudio", [".venv", "ctstudio"])]


def evict(folders):
    for top in folders:
        for d, _, files in os.walk(top):
            for f in files:
                p = os.path.join(d, f)
                if os.path.isfile(p) and not os.path.islink(p):
                    fd = os.open(p, os.O_RDONLY)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    os.close(fd)


def to_shown(exe):
    t0 = time.perf_counter()
    p = subprocess.Popen([exe], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stderr:
            if line.startswith("selftest: window shown"):
                return time.perf_counter() - t0
        raise SystemExit(f"{exe} exited ({p.wait()}) without showing its window")
    finally:
        p.kill()
        p.wait()


def du(folders):
    out = subprocess.run(["du", "-sch", *folders], capture_output=True, text=True).stdout.splitlines()
    return out[-1].split()[0]


print("| build | size (du -sh) | files | cold start to shown window | warm (median, min-max) |")
print("|---|---|---|---|---|")
for name, exe, folders in BUILDS:
    if not os.access(exe, os.X_OK):
        print(f"| {name} | missing: build it first | | | |")
        continue
    files = sum(len(f) for _, _, f in (w for top in folders for w in os.walk(top)))
    cold = []
    for _ in range(3):
        evict(folders)
        cold.append(to_shown(exe))
    warm = [to_shown(exe) for _ in range(runs)]
    print(f"| {name} | {du(folders)} | {files} | {' / '.join(f'{c:.1f}' for c in cold)} s | "
          f"{statistics.median(warm):.1f} s ({min(warm):.1f}-{max(warm):.1f}) |", flush=True)
with open("/proc/loadavg") as f:
    print(f"\nload average after measuring: {' '.join(f.read().split()[:3])} on {os.cpu_count()} cores")
EOF
