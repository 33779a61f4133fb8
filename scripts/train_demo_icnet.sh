#!/usr/bin/env bash
# Train the bundled demo IC-Net (ROI [-150, 150] HU, 64x64) on the bundled headsq volume.
# One command, CPU: about 15 min (4000 steps) on a 2-core machine. Resumable: run it again to continue.
# Writes runs/demo-icnet/icnet-demo.{safetensors,json}; copy both into resources/models/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo-icnet}
RESUME=""; [ -f "$OUT/checkpoint/state.json" ] && RESUME="--resume"
exec .venv/bin/python -m ctstudio.cli train icnet --data resources/sample/headsq_hu.nii.gz --config demo \
  --out "$OUT" --name icnet-demo --seed 0 --threads "${THREADS:-1}" --steps "${STEPS:-4000}" $RESUME "$@"
