#!/usr/bin/env bash
# Smoke test of the standalone bundles, as a user runs them (slow: not part of ./test.sh).
#
#   packaging/smoke.sh              # build both bundles (packaging/build.sh), then test them
#   packaging/smoke.sh --no-build   # test the bundles already in dist/
#
# Reader-only bundle (dist/ctstudio-reader): --version says "torch: not installed"; `study demo` writes
# the templates and cases; the app starts offscreen on the bundled sample volume and a scripted reader
# answers a pair study and a continuity study through the Study tab's own screens (CTSTUDIO_SELFTEST=study,
# see ctstudio/app/selftest.py), each answer checked in the database; `study analyze` and the metrics
# that need no model run; a model command says the build has no models.
# Full bundle (dist/ctstudio): --version names torch; `generate` continues the sample with the bundled
# demo model and `info` reads the result.
# Everything runs from a temporary folder with the bundles' own copies of the resources, never from
# the source tree or .venv. Exit status 0 when every check passed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ "${1:-}" = "--no-build" ] || packaging/build.sh reader full

reader="$root/dist/ctstudio-reader/ctstudio"
full="$root/dist/ctstudio/ctstudio"
for exe in "$reader" "$full"; do
    [ -x "$exe" ] || { echo "smoke: $exe missing: run packaging/build.sh" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# No source tree, no venv, no user settings or models: only what the bundle carries.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
export PATH=/usr/bin:/bin HOME="$tmp/home" CTSTUDIO_SETTINGS="$tmp/settings.ini" CTSTUDIO_MODELS="$tmp/models"
export QT_QPA_PLATFORM=offscreen
mkdir -p "$HOME"
sample="$root/dist/ctstudio-reader/_internal/resources/sample/headsq_hu.nii.gz"
step() { echo "smoke: $*" >&2; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

step "reader: --version"
"$reader" --version | tee version.txt
grep -qx "torch: not installed" version.txt || fail "the reader-only bundle should have no torch"
grep -q "^build: reader (standalone bundle)" version.txt || fail "the reader-only bundle does not say what it is"

step "reader: study demo"
"$reader" study demo demo >/dev/null
for kind in pair continuity; do
    step "reader: the app on the sample volume, scripted $kind study through the Study tab"
    CTSTUDIO_SELFTEST=study CTSTUDIO_SELFTEST_SPEC="$tmp/demo/headsq_${kind}_demo.toml" \
        CTSTUDIO_SELFTEST_DB="$tmp/study.db" CTSTUDIO_SELFTEST_TIMEOUT=240 \
        timeout 300 "$reader" "$sample" || fail "scripted $kind session (exit $?)"
done

step "reader: study analyze and export (the Results tab's machinery)"
"$reader" study analyze --db study.db --out results >/dev/null
find results -name "*.csv" | grep -q . || fail "study analyze wrote no tables"  # one folder per study when a database holds several
"$reader" study export --db study.db --out responses.csv
[ "$(($(wc -l < responses.csv) - 1))" -gt 0 ] || fail "no responses exported"

step "reader: metrics that need no model (PSNR, SSIM, CV, moments)"
"$reader" evaluate --real demo/cases/real/headsq_real_0.nii.gz --fake demo/cases/synthetic/headsq_degraded_0.nii.gz --out metrics \
    --metrics psnr,ssim,cv,moments >/dev/null
[ -s metrics/metrics.json ] && [ -s metrics/report.html ] || fail "evaluate wrote no metrics"

step "reader: a model command says there are no models"
set +e
"$reader" generate --slices 1 -o none.nii.gz 2> nomodels.txt
rc=$?
set -e
[ $rc = 2 ] && grep -q "reader-only build of ctstudio: it has no models" nomodels.txt \
    || fail "reader generate: exit $rc, $(cat nomodels.txt)"

step "full: --version"
"$full" --version | tee version-full.txt
grep -q "^torch: [0-9]" version-full.txt || fail "the full bundle should name its torch"
grep -q "^build: full (standalone bundle)" version-full.txt || fail "the full bundle does not say what it is"

step "full: generate 1 slice after slice 20 of the bundled sample (demo model)"
"$full" generate --seed-volume "$root/dist/ctstudio/_internal/resources/sample/headsq_hu.nii.gz" \
    --seed-slice 20 --slices 1 -o generated.nii.gz
"$full" info generated.nii.gz --json > generated.json
grep -q '"shape_zyx"' generated.json || fail "info cannot read the generated volume"

step "OK: every check passed"
