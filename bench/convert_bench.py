"""Conversion benchmark: block seams with and without overlap, and batched kernel conversion speed.

    .venv/bin/python bench/convert_bench.py [--cgan NAME] [--ggcl NAME] [--crop 192] [--slices 8]

1. Seams. The demo cGAN denoises a Poisson-degraded slab of the real chest CT (../shared/data) twice:
   abutting 32³ blocks (overlap 0, the baseline, as in the paper) and overlapped, blended blocks.
   The seam is the mean |dHU| between neighbours across block borders divided by the same inside
   blocks (1.0 = invisible). Time and PSNR against the clean CT are printed beside it.
2. Kernel conversion. The demo GGCL model converts phantom UB slices to YA one slice at a time
   (baseline) and in batches of 4; slices/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("CTSTUDIO_SHARED_DATA", ROOT.parent / "shared" / "data"))


def seams(model_name: str, crop: int) -> list[tuple]:
    from ctstudio.io import read_volume
    from ctstudio.translation.blocks import seam_score
    from ctstudio.metrics.ssim import psnr
    from ctstudio.translation.cgan import CGANModel, degrade

    model = CGANModel.load(model_name)
    v = read_volume(DATA / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz").array
    clean = v[-32:].astype(np.float32)  # the held-back end of the volume
    y0 = (clean.shape[1] - crop) // 2
    x0 = (clean.shape[2] - crop) // 2
    clean = clean[:, y0:y0 + crop, x0:x0 + crop]
    cond = degrade(clean, model.degradation, np.random.default_rng(1234))
    rows = []
    base = seam_score(clean, block=model.block, overlap=0)
    rows.append(("clean CT (reference)", "-", f"{base['ratio']:.3f}", "-", "-"))
    rows.append(("degraded input", "-", f"{seam_score(cond, block=model.block, overlap=0)['ratio']:.3f}",
                 f"{psnr(cond, clean):.2f}", "-"))
    t_base = None
    for overlap in (0, 8, 16):
        t = time.perf_counter()
        out = model.run_volume(cond, overlap=overlap)
        dt = time.perf_counter() - t
        t_base = t_base or dt
        # measured at the abutting grid's borders (where the baseline's seams are) and at this tiling's own
        s0 = seam_score(out, block=model.block, overlap=0)["ratio"]
        s1 = seam_score(out, block=model.block, overlap=overlap)["ratio"]
        rows.append((f"cGAN, overlap {overlap}" + (" (baseline)" if overlap == 0 else ""),
                     f"{dt:.1f} s ({dt / t_base:.2f}x)", f"{max(s0, s1):.3f}", f"{psnr(out, clean):.2f}",
                     f"{s0:.3f} / {s1:.3f}"))
    return rows


def kernel_speed(model_name: str, n: int) -> list[tuple]:
    from ctstudio.io import read_volume
    from ctstudio.translation.kernels import KernelConverter

    conv = KernelConverter.load(model_name)
    ub = read_volume(DATA / "head-phantom-philips-2kernels" / "phantom_UB-std_slices24-55.nii.gz")
    vol = ub.with_array(ub.array[-n:].copy())
    rows = []
    t1 = None
    for bs in (1, 4):
        conv.convert(vol.with_array(vol.array[:2].copy()), "YA", batch_size=bs)  # warm-up
        t = time.perf_counter()
        conv.convert(vol, "YA", batch_size=bs)
        dt = time.perf_counter() - t
        t1 = t1 or dt
        rows.append((f"batch {bs}" + (" (baseline)" if bs == 1 else ""), f"{n / dt:.2f} slices/s",
                     f"{dt:.1f} s", f"{t1 / dt:.2f}x"))
    return rows


def table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cgan", default="cgan-chest-denoise")
    ap.add_argument("--ggcl", default="ggcl-phantom-ub-ya")
    ap.add_argument("--crop", type=int, default=192, help="in-plane size of the chest slab (32 slices)")
    ap.add_argument("--slices", type=int, default=8, help="phantom slices to convert")
    args = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"\n1. Block seams: {args.cgan} on a 32 x {args.crop} x {args.crop} held-back chest slab "
          "(seam = |dHU| across block borders / inside; 1.0 = no seam)\n")
    print(table(("tiling", "time (vs baseline)", "seam ratio (worst)", "PSNR dB", "seam at 32-grid / own"),
                seams(args.cgan, args.crop)))
    print(f"\n2. Kernel conversion speed: {args.ggcl}, {args.slices} phantom slices 512², UB -> YA\n")
    print(table(("batching", "throughput", "time", "speed-up"), kernel_speed(args.ggcl, args.slices)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
