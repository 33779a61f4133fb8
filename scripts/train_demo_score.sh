#!/usr/bin/env bash
# Train the bundled demo score model (ASCII, K=2, 64x64, 12-bit HU) on the bundled headsq volume.
# One command, CPU, one stage: `--config demo` (ScoreTrainConfig.demo(): 7500 steps on whole 64x64 slices, the
# prior slice given clean as a condition in 90% of stacks, residual preconditioning, conditioning augmentation,
# log-normal noise levels, unit loss weighting). Resumable: run the script again to continue.
# Wall time measured here is in the model card (train_wall_s); 1 torch thread by default (THREADS=2 to change).
# Bundle: .venv/bin/python scripts/bundle_demo_model.py runs/demo-score/score-k2-demo.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo-score}
RESUME=""; [ -f "$OUT/checkpoint/state.json" ] && RESUME="--resume"
exec .venv/bin/python -m ctstudio.cli train score --data resources/sample/headsq_hu.nii.gz --config demo \
  --out "$OUT" --name score-k2-demo --seed 0 --threads "${THREADS:-1}" $RESUME "$@"
