"""Whole-volume inference with a block model: 32³ tiling with overlap and blending, and the seam measure.

A 3D cGAN sees 32³ blocks. Cutting a volume into abutting blocks and pasting the outputs back leaves
visible block borders (the paper's "artifact blocks"). Here blocks overlap by ``overlap`` voxels and
each output is weighted by a separable ramp that falls towards the block's faces; the weighted sum is
divided by the summed weights. Every weight is > 0, so an identity model reconstructs its input
exactly (to float rounding), whatever the overlap.

:func:`seam_score` measures what a reader would see: the mean |dHU| between neighbouring voxels that
straddle a block border, against the mean |dHU| between neighbours inside blocks.

numpy only (the block function may run torch inside); no Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from ctstudio.errors import InputError
from ctstudio.jobs import Progress, check_cancel, run_job


def block_starts(n: int, block: int, overlap: int) -> list[int]:
    """Start indices along one axis of length ``n >= block``: step ``block - overlap``; the last ends at ``n``."""
    if not 0 <= overlap < block:
        raise InputError(f"overlap must be in [0, {block}), got {overlap}")
    if n < block:
        raise InputError(f"axis of length {n} is shorter than the block {block}")
    step = block - overlap
    starts = list(range(0, n - block + 1, step))
    if starts[-1] != n - block:
        starts.append(n - block)
    return starts


def blend_weights(block: int, overlap: int) -> np.ndarray:
    """1D weights for one block axis: a linear ramp over ``overlap`` voxels at each face, 1 inside, > 0 everywhere."""
    i = np.arange(block, dtype=np.float64)
    if overlap <= 0:
        return np.ones(block)
    ramp = np.minimum((i + 0.5) / overlap, (block - i - 0.5) / overlap)
    return np.clip(ramp, 1e-3, 1.0)


def _pad_to(arr: np.ndarray, block: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    pads = [(0, max(0, block - s)) for s in arr.shape]
    if not any(p[1] for p in pads):
        return arr, tuple(slice(None) for _ in arr.shape)
    out = np.pad(arr, pads, mode="reflect" if all(s > 1 for s in arr.shape) else "edge")
    return out, tuple(slice(0, s) for s in arr.shape)


def apply_blockwise(arr: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], block: int = 32, overlap: int = 8,
                    batch_size: int = 8, callback=None, cancel=None) -> np.ndarray:
    """:func:`iter_blockwise` run to its end; ``callback`` receives each event."""
    return run_job(iter_blockwise(arr, fn, block, overlap, batch_size, cancel), callback)


def iter_blockwise(arr: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], block: int = 32, overlap: int = 8,
                   batch_size: int = 8, cancel=None) -> Generator[dict, None, np.ndarray]:
    """Run ``fn`` over blocks of a 3D array and stitch the outputs (float64), as a job.

    ``fn`` maps a float32 batch ``(B, block, block, block)`` to an array of the same shape. Axes shorter
    than ``block`` are padded by reflection and cropped back. It yields an event of the one schema
    (:mod:`ctstudio.jobs`: job ``"blocks"``, stage ``"block"``, ``done`` of ``total`` blocks, payload
    ``blocks``: the (z, y, x) starts of the batch) after each batch and returns the stitched array; ``cancel`` (a :class:`~ctstudio.jobs.CancelToken` or callable) is checked before each batch and
    raises :class:`~ctstudio.errors.Cancelled`.
    """
    if arr.ndim != 3:
        raise InputError(f"expected a 3D array (z, y, x), got shape {arr.shape}")
    src, crop = _pad_to(np.asarray(arr, dtype=np.float32), block)
    starts = [block_starts(n, block, overlap) for n in src.shape]
    w1 = blend_weights(block, overlap)
    w3 = (w1[:, None, None] * w1[None, :, None] * w1[None, None, :]).astype(np.float64)
    acc = np.zeros(src.shape, dtype=np.float64)
    wsum = np.zeros(src.shape, dtype=np.float64)
    positions = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    total = len(positions)
    progress = Progress("blocks", total, "block")
    for b0 in range(0, total, batch_size):
        check_cancel(cancel, f"block inference cancelled after {b0} of {total} blocks")
        pos = positions[b0:b0 + batch_size]
        batch = np.stack([src[z:z + block, y:y + block, x:x + block] for z, y, x in pos])
        out = np.asarray(fn(batch), dtype=np.float64)
        if out.shape != batch.shape:
            raise InputError(f"the block model returned shape {out.shape} for input {batch.shape}")
        for (z, y, x), o in zip(pos, out):
            acc[z:z + block, y:y + block, x:x + block] += o * w3
            wsum[z:z + block, y:y + block, x:x + block] += w3
        yield progress.event("block", min(b0 + batch_size, total), blocks=pos, block=block)
    return (acc / wsum)[crop]


def tile_borders(n: int, block: int, overlap: int) -> list[int]:
    """Indices ``i`` where a tile starts (``i > 0``): the pair (i-1, i) straddles a tile border."""
    return [s for s in block_starts(n, block, overlap) if s > 0]


def seam_score(arr: np.ndarray, block: int = 32, overlap: int = 0, borders: list[list[int]] | None = None) -> dict:
    """Mean |dHU| between neighbours across tile borders vs inside tiles, over all three axes.

    ``borders`` (per axis) defaults to the tile starts of a ``block``/``overlap`` tiling. Returns
    ``{"border": .., "inside": .., "ratio": border / inside}``; a ratio near 1 means no visible seam.
    """
    a = np.asarray(arr, dtype=np.float64)
    if borders is None:
        borders = [tile_borders(n, block, overlap) if n >= block else [] for n in a.shape]
    b_sum = b_n = i_sum = i_n = 0.0
    for axis in range(3):
        d = np.abs(np.diff(a, axis=axis))  # d[i] = a[i+1] - a[i]
        mask = np.zeros(d.shape[axis], dtype=bool)
        for s in borders[axis]:
            if 0 < s <= d.shape[axis]:
                mask[s - 1] = True
        sel = [slice(None)] * 3
        sel[axis] = mask
        bd = d[tuple(sel)]
        sel[axis] = ~mask
        idd = d[tuple(sel)]
        b_sum += bd.sum()
        b_n += bd.size
        i_sum += idd.sum()
        i_n += idd.size
    border = b_sum / b_n if b_n else float("nan")
    inside = i_sum / i_n if i_n else float("nan")
    return {"border": float(border), "inside": float(inside), "ratio": float(border / inside) if inside else float("nan")}
