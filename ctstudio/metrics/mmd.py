"""bMMD²: batch-wise squared maximum mean discrepancy between real and generated volumes.

As the ASCII paper reports it (following Kwon et al., MICCAI 2019, whose evaluation code it
reuses): draw a batch of B real and B generated volumes, flatten each to a vector of intensities
in the model range [-1, 1] of the 12-bit HU range, and take the biased (V-statistic) MMD² with a
linear kernel k(x, y) = <x, y>:

    MMD² = 1/B² (Σ <x_i, x_j> + Σ <y_i, y_j>) - 2/B² Σ <x_i, y_j>  =  |mean(x) - mean(y)|²

then average over batches. A Gaussian-kernel variant (``kernel="gaussian"``, bandwidth by the
median heuristic unless given) is available for a characteristic kernel. Identical sets give 0.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import FULL_12BIT, HURange, hu_to_model


def _flatten(arrays: Sequence[np.ndarray], rng: HURange) -> np.ndarray:
    shapes = {np.asarray(a).shape for a in arrays}
    if len(shapes) != 1:
        raise InputError(f"bMMD² compares volumes of one shape, got {sorted(shapes)}",
                         hint="resample the volumes onto one grid (or compare slices of one size)")
    return np.stack([hu_to_model(np.asarray(a, dtype=np.float32), rng).reshape(-1) for a in arrays]).astype(np.float64)


def mmd2_linear(x: np.ndarray, y: np.ndarray) -> float:
    """Biased MMD² with the linear kernel, from the three Gram sums (rows are samples)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    bx, by = x.shape[0], y.shape[0]
    sx, sy = x.sum(0), y.sum(0)
    return float(sx @ sx / bx ** 2 + sy @ sy / by ** 2 - 2.0 * (sx @ sy) / (bx * by))


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """The median heuristic: median pairwise distance of the pooled samples."""
    z = np.concatenate([x, y])
    d = np.sqrt(_sqdist(z, z))[np.triu_indices(len(z), 1)]
    med = float(np.median(d)) if d.size else 1.0
    return med if med > 0 else 1.0


def mmd2_gaussian(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Biased MMD² with k(a, b) = exp(-|a - b|² / (2 h²))."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    h = median_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    g = 1.0 / (2.0 * h * h)
    kxx = np.exp(-g * _sqdist(x, x)).mean()
    kyy = np.exp(-g * _sqdist(y, y)).mean()
    kxy = np.exp(-g * _sqdist(x, y)).mean()
    return float(kxx + kyy - 2.0 * kxy)


def bmmd2(
    real: Sequence[np.ndarray],
    fake: Sequence[np.ndarray],
    batch_size: int = 4,
    n_batches: int = 20,
    kernel: str = "linear",
    rng: HURange = FULL_12BIT,
    bandwidth: float | None = None,
    seed: int = 0,
    callback: Callable[[dict], None] | None = None,
) -> dict:
    """bMMD² between real and generated HU arrays of one shape (volumes or slices).

    Each of ``n_batches`` batches draws ``batch_size`` real and ``batch_size`` generated samples
    without replacement (seeded); when a set is no larger than the batch, the whole set is the batch
    every time (and a single batch is computed).
    """
    if kernel not in ("linear", "gaussian"):
        raise InputError(f"unknown MMD kernel {kernel!r}; choose linear or gaussian")
    if len(real) < 1 or len(fake) < 1:
        raise InputError("bMMD² needs at least one real and one generated volume")
    shapes = {np.asarray(a).shape for a in list(real) + list(fake)}
    if len(shapes) != 1:
        raise InputError(f"bMMD² compares volumes of one shape, got {sorted(shapes)}",
                         hint="resample the volumes onto one grid (or compare slices of one size)")
    x_all = _flatten(real, rng)
    y_all = _flatten(fake, rng)
    b = max(1, int(batch_size))
    bx, by = min(b, len(x_all)), min(b, len(y_all))
    whole = bx == len(x_all) and by == len(y_all)
    nb = 1 if whole else max(1, int(n_batches))
    gen = np.random.default_rng(seed)
    values = []
    for i in range(nb):
        xi = x_all[gen.choice(len(x_all), bx, replace=False)] if bx < len(x_all) else x_all
        yi = y_all[gen.choice(len(y_all), by, replace=False)] if by < len(y_all) else y_all
        if kernel == "linear":
            values.append(mmd2_linear(xi, yi))
        else:
            values.append(mmd2_gaussian(xi, yi, bandwidth))
        if callback is not None:
            callback({"stage": "bmmd2", "done": i + 1, "total": nb})
    v = np.asarray(values)
    return {"bmmd2": float(v.mean()), "bmmd2_sd": float(v.std()), "n_batches": nb, "batch_size": [bx, by],
            "kernel": kernel, "intensity": f"[-1, 1] of HU [{rng.lower:g}, {rng.upper:g}]",
            "n_voxels": int(x_all.shape[1])}
