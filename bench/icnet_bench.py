"""IC-Net against histogram matching on held-out real adjacent slice pairs, measured in the same run.

    .venv/bin/python bench/icnet_bench.py [--model icnet-demo ...] [--slices 36:48] [--mus 0.75,0.85,1,1.15,1.25]

Takes the adjacent pairs of the bundled headsq sample volume whose two slices both lie in the held-out
band (array slice indices START:STOP; default: the band the model card says was held out of training),
in both directions (each slice once as the generated slice, once as the prior). Each generated slice is
shifted by IC-Net's drift ``intensity_drift_hu(x, mu)`` (ROI [-150, 150] HU; air and bone keep their
values), then calibrated against its real prior by each IC-Net given and by histogram matching
(scikit-image, the baseline). Prints one table: ROI MAE in HU to the unshifted slice (mean over pairs)
before calibration, for each IC-Net and for histogram matching, and the ratio IC-Net / histogram
(below 1: IC-Net is better). 1 torch thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _band(text: str | None, meta: dict) -> tuple[int, int]:
    if text:
        a, b = text.split(":")
        return int(a), int(b)
    band = meta.get("config", {}).get("training", {}).get("holdout") or []
    if len(band) != 2:
        raise SystemExit(f"{meta.get('name')}: the card names no held-out band; pass --slices START:STOP")
    return int(band[0]), int(band[1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", help="IC-Net name or path (repeatable; default icnet-demo)")
    ap.add_argument("--slices", help="held-out band START:STOP (array indices; default: the first model's card)")
    ap.add_argument("--mus", default="0.75,0.85,1,1.15,1.25")
    ap.add_argument("--volume", type=Path, default=ROOT / "resources" / "sample" / "headsq_hu.nii.gz")
    ap.add_argument("--json", action="store_true", help="print the table as JSON too")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from ctstudio.diffusion.calibrate import ICNetCalibrator, histogram_match
    from ctstudio.diffusion.loading import load_icnet
    from ctstudio.imaging.intensity import intensity_drift_hu
    from ctstudio.io import read_volume

    names = args.model or ["icnet-demo"]
    cals = []
    for n in names:
        net, meta = load_icnet(n)
        cals.append((n, ICNetCalibrator(net, meta["roi"], meta["name"]), meta))
    lo, hi = _band(args.slices, cals[0][2])
    roi = cals[0][1].roi
    a = read_volume(args.volume).array.astype(np.float32)
    pairs = [(a[z], a[z + 1]) for z in range(lo, hi - 1)] + [(a[z + 1], a[z]) for z in range(lo, hi - 1)]
    mus = [float(m) for m in args.mus.split(",")]

    rows, secs = [], {n: 0.0 for n in names}
    for mu in mus:
        errs = []
        for prior, x in pairs:
            inside = (x > roi.lower) & (x < roi.upper)
            g = intensity_drift_hu(x, mu, roi)
            e = [np.abs(g - x)[inside].mean()]
            for n, cal, _ in cals:
                t = time.perf_counter()
                out = cal(g, prior)
                secs[n] += time.perf_counter() - t
                e.append(np.abs(out - x)[inside].mean())
            e.append(np.abs(histogram_match(g, prior, roi) - x)[inside].mean())
            errs.append(e)
        rows.append((mu, np.mean(errs, axis=0)))

    print(f"held-out pairs: slices {lo}..{hi - 1} of {args.volume.name}, {len(pairs)} (generated, prior) pairs "
          f"(both directions); ROI MAE in HU (mean over pairs); ratio = IC-Net / histogram matching")
    head = ["mu", "before"] + names + ["histogram"] + [f"ratio {n}" for n in names]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for mu, e in rows:
        cells = [f"{mu:g}"] + [f"{v:.2f}" for v in e] + [f"{v / e[-1]:.2f}" for v in e[1:-1]]
        print("| " + " | ".join(cells) + " |")
    shifted = [r for r in rows if abs(r[0] - 1.0) > 1e-6]
    for i, n in enumerate(names):
        m = np.mean([e[1 + i] for _, e in shifted])
        h = np.mean([e[-1] for _, e in shifted])
        print(f"{n}: mean over mu != 1: IC-Net {m:.2f}, histogram {h:.2f} (ratio {m / h:.2f}); "
              f"{1000 * secs[n] / (len(pairs) * len(mus)):.1f} ms per slice")
    if args.json:
        print(json.dumps({f"mu={mu:g}": [round(float(v), 2) for v in e] for mu, e in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
