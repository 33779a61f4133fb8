#!/usr/bin/env bash
# Train the bundled demo score model (ASCII, K=2, 64x64, 12-bit HU) on the bundled headsq volume.
# One command, CPU: about 40-60 min on a 2-core machine. Resumable: run it again to continue.
# Writes runs/demo-score/score-k2-demo.{safetensors,json}; copy both into resources/models/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo-score}
RESUME=""; [ -f "$OUT/checkpoint/state.json" ] && RESUME="--resume"
exec .venv/bin/python -m ctstudio.cli train score --data resources/sample/headsq_hu.nii.gz --config demo \
  --out "$OUT" --name score-k2-demo --seed 0 --threads "${THREADS:-1}" $RESUME "$@"
