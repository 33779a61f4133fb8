"""Coefficient of variation (CV) in brain parenchyma.

The parenchyma mask is an HU range that excludes air, fat, CSF-dark regions and bone (default
[0, 80] HU, the soft-tissue band of grey and white matter), eroded by one voxel in-plane so that
partial-volume rims at bone and air edges drop out. Reported per volume:

* ``cv``: sd / mean of all parenchyma voxels (noise + tissue contrast);
* ``slice_mean_cv``: sd / mean of the per-slice parenchyma means across axial slices (how much the
  overall brightness drifts from slice to slice, what intensity calibration targets);
* the mask's voxel count and the HU mean and sd.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from ctstudio.errors import InputError

PARENCHYMA_HU = (0.0, 80.0)


def parenchyma_mask(hu: np.ndarray, hu_range: tuple[float, float] = PARENCHYMA_HU, erode: int = 1) -> np.ndarray:
    """Boolean mask of voxels inside ``hu_range``, eroded ``erode`` voxels within each axial slice."""
    a = np.asarray(hu)
    lo, hi = hu_range
    if not hi > lo:
        raise InputError(f"the parenchyma HU range needs upper > lower, got [{lo}, {hi}]")
    mask = (a >= lo) & (a <= hi)
    if erode > 0:
        st = np.zeros((3, 3, 3), bool) if a.ndim == 3 else np.ones((3, 3), bool)
        if a.ndim == 3:
            st[1] = True
        mask = ndimage.binary_erosion(mask, structure=st, iterations=erode)
    return mask


def parenchyma_cv(hu: np.ndarray, hu_range: tuple[float, float] = PARENCHYMA_HU, erode: int = 1,
                  min_voxels: int = 50) -> dict:
    """CV of the parenchyma in one HU volume (or slice); see the module doc."""
    a = np.asarray(hu, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    mask = parenchyma_mask(a, hu_range, erode)
    n = int(mask.sum())
    if n < min_voxels:
        raise InputError(f"only {n} voxels lie in the parenchyma range [{hu_range[0]:g}, {hu_range[1]:g}] HU "
                         f"(need {min_voxels})", hint="is this a head CT in HU? widen the range with --cv-range")
    vals = a[mask]
    mean, sd = float(vals.mean()), float(vals.std())
    slice_means = [float(a[k][mask[k]].mean()) for k in range(a.shape[0]) if mask[k].sum() >= min_voxels]
    sm = np.asarray(slice_means)
    return {
        "cv": sd / mean if mean != 0 else float("nan"),
        "mean_hu": mean,
        "sd_hu": sd,
        "n_voxels": n,
        "slice_mean_cv": float(sm.std() / sm.mean()) if sm.size >= 2 and sm.mean() != 0 else float("nan"),
        "n_slices": int(sm.size),
        "hu_range": list(hu_range),
    }


def cv_summary(volumes: Sequence[np.ndarray], **kwargs) -> dict:
    """Per-volume CVs and their mean / sd over a set."""
    per = [parenchyma_cv(v, **kwargs) for v in volumes]
    cvs = np.array([p["cv"] for p in per])
    scv = np.array([p["slice_mean_cv"] for p in per], dtype=float)
    return {"per_volume": per, "cv_mean": float(cvs.mean()), "cv_sd": float(cvs.std()),
            "slice_mean_cv_mean": float(np.nanmean(scv)) if np.isfinite(scv).any() else float("nan")}
