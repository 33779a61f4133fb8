"""Resampling helpers for CT volumes (numpy / scipy only, no torch).

Used by the DICOM reader to put a tilted or non-uniformly spaced stack of slices onto a
regular grid, and usable on any array whose voxel positions are an affine function of the index.

Conventions: arrays are ``[z, y, x]``; geometry vectors are LPS in index order ``(x, y, z)`` as in
:mod:`ctstudio.volume`. Linear interpolation by default; points outside the input get ``fill``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _to_int16(values: np.ndarray) -> np.ndarray:
    info = np.iinfo(np.int16)
    return np.clip(np.rint(values), info.min, info.max).astype(np.int16)


def resample_z_positions(
    array: np.ndarray, positions: np.ndarray, new_positions: np.ndarray, fill: float = -1024.0
) -> np.ndarray:
    """Linear interpolation along axis 0 from slices at ``positions`` (increasing, mm) to ``new_positions``.

    Slices that coincide with an input position are copied exactly (no rounding drift).
    Positions outside ``[positions[0], positions[-1]]`` get ``fill``.
    """
    positions = np.asarray(positions, dtype=float)
    new_positions = np.asarray(new_positions, dtype=float)
    if positions.ndim != 1 or positions.size != array.shape[0]:
        raise ValueError("positions must give one position per slice")
    if np.any(np.diff(positions) <= 0):
        raise ValueError("positions must be strictly increasing")
    out = np.empty((new_positions.size,) + array.shape[1:], dtype=np.int16)
    for n, p in enumerate(new_positions):
        hi = int(np.searchsorted(positions, p))
        if hi < positions.size and abs(positions[hi] - p) < 1e-6:
            out[n] = array[hi]
        elif hi > 0 and abs(positions[hi - 1] - p) < 1e-6:
            out[n] = array[hi - 1]
        elif hi == 0 or hi >= positions.size:
            out[n] = fill
        else:
            lo = hi - 1
            w = (p - positions[lo]) / (positions[hi] - positions[lo])
            out[n] = _to_int16(array[lo].astype(np.float32) * (1 - w) + array[hi].astype(np.float32) * w)
    return out


def uniform_positions(positions: np.ndarray, spacing: float | None = None) -> tuple[np.ndarray, float]:
    """A uniform grid from the first to the last position; ``spacing`` defaults to the median step."""
    positions = np.asarray(positions, dtype=float)
    if spacing is None:
        spacing = float(np.median(np.diff(positions)))
    n = int(np.floor((positions[-1] - positions[0]) / spacing + 1e-6)) + 1
    return positions[0] + spacing * np.arange(n), float(spacing)


def resample_affine(
    array: np.ndarray,
    src_origin,
    src_axes: np.ndarray,
    dst_origin,
    dst_direction: np.ndarray,
    dst_spacing,
    dst_shape: tuple[int, int, int],
    order: int = 1,
    fill: float = -1024.0,
) -> np.ndarray:
    """Resample ``array`` onto a regular grid.

    ``src_axes`` is a 3x3 matrix whose column c is the LPS step (mm) of one index along source
    axis c (x, y, z order): voxel ``[k, j, i]`` sits at ``src_origin + src_axes @ (i, j, k)``.
    This covers sheared grids, e.g. a gantry-tilted stack. The destination grid is
    ``dst_origin + dst_direction @ (dst_spacing * (i, j, k))`` with shape ``dst_shape`` ``(z, y, x)``.
    """
    src_axes = np.asarray(src_axes, dtype=float)
    dst_axes = np.asarray(dst_direction, dtype=float) * np.asarray(dst_spacing, dtype=float)[None, :]
    # source index (xyz) = inv(src_axes) @ (dst_origin - src_origin + dst_axes @ dst index (xyz))
    inv = np.linalg.inv(src_axes)
    m_xyz = inv @ dst_axes
    off_xyz = inv @ (np.asarray(dst_origin, dtype=float) - np.asarray(src_origin, dtype=float))
    # scipy works in array order (z, y, x): reverse both index vectors.
    perm = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=float)
    m_zyx = perm @ m_xyz @ perm
    off_zyx = perm @ off_xyz
    out = ndimage.affine_transform(
        array.astype(np.float32), m_zyx, offset=off_zyx, output_shape=tuple(int(s) for s in dst_shape),
        order=order, mode="constant", cval=float(fill),
    )
    return _to_int16(out)


def axial_grid_for_sheared(
    shape: tuple[int, int, int], src_origin, src_axes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], tuple[int, int, int]]:
    """An orthogonal grid covering a sheared (tilted) stack.

    The new z axis follows the slice stacking direction (the table axis), x keeps the row
    direction (made orthogonal to z), y completes a right-handed frame on the side of the old
    column direction. In-plane spacings are kept; z spacing is the stacking step.
    Returns ``(origin, direction, spacing, shape_zyx)``.
    """
    src_axes = np.asarray(src_axes, dtype=float)
    nz, ny, nx = shape
    step = src_axes[:, 2]
    ez = step / np.linalg.norm(step)
    ex = src_axes[:, 0] - (src_axes[:, 0] @ ez) * ez
    ex /= np.linalg.norm(ex)
    ey = np.cross(ez, ex)
    # With slices sorted along the normal (row x column), ez x ex follows the old column direction.
    direction = np.stack([ex, ey, ez], axis=1)
    spacing = (float(np.linalg.norm(src_axes[:, 0])), float(np.linalg.norm(src_axes[:, 1])), float(np.linalg.norm(step)))
    corners = np.array([[i, j, k] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)], dtype=float)
    pts = np.asarray(src_origin, dtype=float)[None, :] + corners @ src_axes.T
    local = (pts - pts[0]) @ direction  # coordinates in the new frame, relative to corner 0
    lo = local.min(axis=0)
    hi = local.max(axis=0)
    size = np.floor((hi - lo) / np.asarray(spacing) + 1e-6).astype(int) + 1
    origin = pts[0] + direction @ lo
    return origin, direction, spacing, (int(size[2]), int(size[1]), int(size[0]))
