"""Slice order and slice size in plain numpy: which way is inferior, and slices resized to a model's grid.

ctstudio generates and trains in the *generation direction*, the inferior direction (towards the feet) as
in the ASCII paper. "Inferior" is worked out from a volume's direction matrix (LPS: +z is superior), never
assumed from the index, so volumes stored either way round behave the same.
"""

from __future__ import annotations

import numpy as np

from ctstudio.volume import Volume


def inferior_step(vol: Volume) -> int:
    """+1 or -1: the array-index step that moves one slice towards the feet."""
    return -1 if vol.direction[2, 2] >= 0 else 1


def resize_slices(arr: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) float HU -> (N, size, size), by area averaging / bilinear (scikit-image)."""
    if arr.shape[1] == size and arr.shape[2] == size:
        return arr.astype(np.float32)
    from skimage.transform import resize

    return np.stack([resize(a, (size, size), order=1, anti_aliasing=True, preserve_range=True)
                     for a in arr]).astype(np.float32)


def inferior_ordered(vol: Volume, size: int | None = None) -> np.ndarray:
    """The volume's slices as float32 HU, ordered superior -> inferior (the generation order)."""
    a = vol.array.astype(np.float32)
    if inferior_step(vol) < 0:
        a = a[::-1]
    if size:
        a = resize_slices(np.ascontiguousarray(a), size)
    return np.ascontiguousarray(a)
