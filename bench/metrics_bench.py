"""FID: batched vs one-by-one Inception features, and the Frechet distance by ctstudio's exact
low-rank route vs the classic scipy.linalg.sqrtm route, measured in the same run.

    .venv/bin/python bench/metrics_bench.py [--images 8] [--batch 8] [--data ../shared/data]

Takes real axial chest CT slices (../shared/data, or the bundled sample volume when that is absent)
and the same slices with Gaussian noise (sd 40 HU), and prints one table:

* Inception-v3 feature extraction of 2 x N slices, batch of ``--batch`` vs one image at a time
  (ratio, absolute seconds, and the largest feature difference between the two);
* FID from those features, ctstudio's ``frechet_distance_from_features`` (nuclear norm of
  A_r A_f^T, O(n m d)) vs ``scipy.linalg.sqrtm`` of the 2048 x 2048 covariance product (the
  pytorch-fid / TF route), with the absolute difference of the two values (the full-size cross-check
  that the unit tests do in an exact subspace to stay fast).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_slices(data: Path, n: int) -> list[np.ndarray]:
    from ctstudio.io import read_volume

    chest = data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz"
    src = chest if chest.is_file() else ROOT / "resources" / "sample" / "headsq_hu.nii.gz"
    vol = read_volume(src).array
    idx = np.linspace(2, vol.shape[0] - 3, n).round().astype(int)
    return [vol[k] for k in idx]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=8, help="slices per set (default 8)")
    ap.add_argument("--batch", type=int, default=8, help="batch size of the batched run (default 8)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)

    import torch

    from ctstudio.metrics import fid

    slices = load_slices(args.data, args.images)
    rng = np.random.default_rng(0)
    noisy = [s + rng.normal(0, 40, s.shape) for s in slices]
    grey = [fid.to_grey8(s, "12-bit") for s in slices + noisy]
    model = fid.load_inception()
    fid.inception_features(grey[:1], 1, model)  # warm-up (first TorchScript call optimises the graph)

    t = time.perf_counter()
    batched = fid.inception_features(grey, args.batch, model)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    single = fid.inception_features(grey, 1, model)
    t_single = time.perf_counter() - t
    feat_diff = float(np.abs(batched - single).max())

    real, fake = batched[: args.images], batched[args.images:]
    t = time.perf_counter()
    ours = fid.frechet_distance_from_features(real, fake)
    t_ours = time.perf_counter() - t
    m1, s1 = fid.feature_stats(real)
    m2, s2 = fid.feature_stats(fake)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = fid.frechet_distance_sqrtm(m1, s1, m2, s2)
    t_ref = time.perf_counter() - t

    n = 2 * args.images
    print(f"FID benchmark: {n} CT slices ({args.images} real + {args.images} noisy), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'task':<44}{'ctstudio':>12}{'baseline':>12}{'ratio':>8}   notes")
    print(f"{'Inception features, batch ' + str(args.batch) + ' vs 1 at a time':<44}{t_batched:>11.2f}s{t_single:>11.2f}s"
          f"{t_batched / t_single:>8.2f}   {n / t_batched:.1f} vs {n / t_single:.1f} img/s; max |feature diff| {feat_diff:.2e}")
    print(f"{'Frechet distance, low-rank vs scipy sqrtm':<44}{t_ours:>11.4f}s{t_ref:>11.2f}s{t_ours / t_ref:>8.1e}   "
          f"FID {ours:.4f} vs {ref:.4f}, |diff| {abs(ours - ref):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
