"""Copy a trained demo model into resources/models/ and complete its model card.

usage: .venv/bin/python scripts/bundle_demo_model.py runs/demo-score/score-k2-demo.safetensors [KEY=JSON ...]
Extra KEY=JSON pairs are added to the card (e.g. measured figures from bench/sampler_bench.py).
"""

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "resources" / "models"

DEMO_NOTE = ("DEMO MODEL trained on tiny data: one 93-slice, 64x64 head-and-neck CT (the VTK headsq volume). "
             "It shows the pipeline working end to end; it is not a clinical or research-grade model and has "
             "memorised much of its single training volume.")
DATA = {
    "name": "VTK headsq (resources/sample/headsq_hu.nii.gz)",
    "source": "GitHub pyvista/vtk-data Data/headsq/quarter.1..93 (commit 126ee906165a8b2f984f08259a4a2d32cf3b3409)",
    "licence": "Apache-2.0 (repository) / VTK BSD-style licence (c) 1993-2008 Ken Martin, Will Schroeder, Bill Lorensen",
    "hu": "approximate HU (raw value - 1024), not calibrated",
    "shape_zyx": [93, 64, 64], "spacing_xyz_mm": [3.2, 3.2, 1.5],
}
COMMANDS = {"score": "scripts/train_demo_score.sh", "icnet": "scripts/train_demo_icnet.sh"}


def main(argv):
    src = Path(argv[0])
    base = src.with_suffix("") if src.suffix == ".safetensors" else src
    meta = json.loads(base.with_suffix(".json").read_text())
    card = meta["card"]
    card["summary"] = "Demo " + card.get("summary", meta["kind"]) + " (tiny data, see demo_note)"
    card["demo_note"] = DEMO_NOTE
    card["training_data"] = DATA
    card["spacing_xyz_mm"] = DATA["spacing_xyz_mm"]
    card["train_command"] = COMMANDS.get(meta["kind"], "")
    card["training_files"] = ["resources/sample/headsq_hu.nii.gz"]
    card["machine"] = "2-core shared CPU (AMD EPYC), torch 2.13.0, 1 thread, no GPU"
    for kv in argv[1:]:
        k, v = kv.split("=", 1)
        card[k] = json.loads(v)
    DEST.mkdir(parents=True, exist_ok=True)
    name = meta["name"]
    shutil.copyfile(base.with_suffix(".safetensors"), DEST / f"{name}.safetensors")
    (DEST / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(f"bundled {name}: {(DEST / f'{name}.safetensors').stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
