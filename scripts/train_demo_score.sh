#!/usr/bin/env bash
# Train the bundled demo score model (ASCII, K=2, 64x64, 12-bit HU) on the bundled headsq volume.
# One command, CPU, two stages (each resumable: run the script again to continue):
#   1. --config demo: 6000 steps on random 32x32 crops (lr 1e-3)       -> runs/demo-score/
#   2. scripts/train_demo_score_ft.json: 3000 steps on whole 64x64 slices (lr 5e-4), starting from stage 1's
#      EMA weights (init_from)                                         -> runs/demo-score-ft/
# Measured here (1 torch thread; 2 threads were 3x slower on the shared 2-core CPU): stage 1 44.5 min while
# the CPU was shared with ~7 jobs; stage 2 ~3 steps/s on a freer CPU (see the model card).
# Bundle: .venv/bin/python scripts/bundle_demo_model.py runs/demo-score-ft/score-k2-demo.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo-score}
FT=${FT:-runs/demo-score-ft}
train() {  # out config
  local resume=""; [ -f "$1/checkpoint/state.json" ] && resume="--resume"
  .venv/bin/python -m ctstudio.cli train score --data resources/sample/headsq_hu.nii.gz --config "$2" \
    --out "$1" --name score-k2-demo --seed "$3" --threads "${THREADS:-1}" $resume "${@:4}"
}
[ -f "$OUT/score-k2-demo.safetensors" ] || train "$OUT" demo 0 "$@"
[ "$OUT" = runs/demo-score ] || { echo "stage 2 reads runs/demo-score (init_from in scripts/train_demo_score_ft.json)" >&2; exit 2; }
train "$FT" scripts/train_demo_score_ft.json 1 "$@"
