#!/usr/bin/env bash
# Train the bundled demo IC-Net (ROI [-150, 150] HU, 64x64 whole slices, global-context path) on the bundled
# headsq volume, holding out slices 36..47 (the card's held-out evaluation: IC-Net vs histogram matching).
# One command, CPU, 1 torch thread: about 13 min (5000 steps, the demo config's; the learning rate follows a
# cosine to 5 % at that step, so change steps in a config file, not with --steps). Resumable: run it again.
# Writes runs/demo-icnet/icnet-demo.{safetensors,json}; bundle with
#   .venv/bin/python scripts/bundle_demo_model.py runs/demo-icnet/icnet-demo.safetensors
# and measure with .venv/bin/python bench/icnet_bench.py
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo-icnet}
RESUME=""; [ -f "$OUT/checkpoint/state.json" ] && RESUME="--resume"
exec .venv/bin/python -m ctstudio.cli train icnet --data resources/sample/headsq_hu.nii.gz --config demo \
  --out "$OUT" --name icnet-demo --seed 0 --threads "${THREADS:-1}" $RESUME "$@"
