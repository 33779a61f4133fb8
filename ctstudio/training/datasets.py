"""Training data: adjacent-slice stacks and slice pairs from a folder of CT volumes (numpy, in HU).

Slice order convention: a stack lists its slices in the *generation direction*, which is the
inferior direction (towards the feet) as in the ASCII paper: channel 0 is the most superior slice,
channel K-1 the most inferior. "Inferior" is worked out from each volume's direction matrix (LPS: +z
is superior), so volumes stored either way round give the same stacks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctstudio.errors import InputError
from ctstudio.imaging.slices import inferior_ordered, inferior_step, resize_slices  # noqa: F401 (recipes use them)
from ctstudio.io import VOLUME_SUFFIXES
from ctstudio.volume import Volume

def find_volumes(data: Path) -> list[Path]:
    """A volume file, or the volumes (files, DICOM folders) inside a folder."""
    data = Path(data)
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise InputError("no such file or folder", path=data, hint="--data takes a CT volume or a folder of them")
    found = sorted(p for p in data.rglob("*") if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES))
    dicom_dirs = sorted({p.parent for p in data.rglob("*.dcm")})
    found += dicom_dirs
    if not found:
        raise InputError("the folder holds no CT volumes (NIfTI/MHA/NRRD or DICOM)", path=data)
    return found


def load_volumes(data: Path) -> list[Volume]:
    from ctstudio.io import read_volume

    return [read_volume(p) for p in find_volumes(data)]


def adjacent_stacks(volumes: list[Volume], k: int, size: int | None = None, air_pad: bool = True,
                    air_hu: float = -1024.0) -> np.ndarray:
    """All K-slice windows, (N, K, H, W) float32 HU, channels in generation order.

    ``air_pad`` adds K-1 all-air slices above the first slice of each volume, so the model also learns to
    start a volume from air (ASCII's "first slice from an all-air seed").
    """
    out = []
    for v in volumes:
        a = inferior_ordered(v, size)
        if air_pad:
            a = np.concatenate([np.full((k - 1, *a.shape[1:]), air_hu, np.float32), a])
        if a.shape[0] < k:
            continue
        idx = np.arange(a.shape[0] - k + 1)[:, None] + np.arange(k)[None]
        out.append(a[idx])
    if not out:
        raise InputError(f"no volume has {k} slices")
    return np.concatenate(out)


def slice_pairs(volumes: list[Volume], size: int | None = None) -> np.ndarray:
    """(prior, next) pairs of adjacent real slices, (N, 2, H, W) float32 HU."""
    return adjacent_stacks(volumes, 2, size, air_pad=False)


def batch_iterator(n: int, batch_size: int, rng: np.random.Generator):
    """Endless stream of index batches: shuffled epochs (deterministic for a given rng)."""
    while True:
        perm = rng.permutation(n)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            chunk = perm[i:i + batch_size]
            if len(chunk) < batch_size:
                chunk = np.concatenate([chunk, rng.integers(0, n, batch_size - len(chunk))])
            yield chunk


def random_crops(batch: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One random ``size`` x ``size`` crop per item of (N, C, H, W), the same window for all channels."""
    n, _, h, w = batch.shape
    ys = rng.integers(0, h - size + 1, n)
    xs = rng.integers(0, w - size + 1, n)
    return np.stack([batch[i, :, y:y + size, x:x + size] for i, (y, x) in enumerate(zip(ys, xs))])
