"""Display geometry of a Volume: radiological orientation of the three planes (numpy only, no Qt).

The slice views, the 3D view and the compare view of :mod:`ctstudio.app` draw what this module
computes; it lives in :mod:`ctstudio.imaging` so that it is tested headless and never imports Qt.

A :class:`DisplayVolume` presents a :class:`~ctstudio.volume.Volume` as a *canonical* array
``C[s, p, l]`` whose axes run inferior->superior, anterior->posterior and right->left (LPS), built
from the volume's direction matrix by axis permutation and flips only (numpy views, no copy, no
resampling; an oblique volume is shown on its nearest axes and :attr:`oblique` says so).

The three planes are then oriented the way a radiologist reads them:

* **axial**: anterior up, patient right on screen left (so patient left is on screen right);
* **coronal**: superior up, patient right on screen left;
* **sagittal**: superior up, anterior on screen left.

Voxel indices reported to the user (the HU probe) are those of the *original* array ``[k, j, i]``,
positions are LPS millimetres from the volume's own geometry.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ctstudio.imaging.resample import resample_affine
from ctstudio.volume import Volume

PLANES = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class PlaneSpec:
    fixed: int  # canonical axis held constant (0 = S, 1 = P, 2 = L)
    rows: int  # canonical axis along screen rows (top -> bottom)
    cols: int  # canonical axis along screen columns (left -> right)
    row_flip: bool  # rows run against the canonical axis (superior at the top)
    labels: tuple[str, str, str, str]  # left, right, top, bottom


PLANE_SPECS: dict[str, PlaneSpec] = {
    "axial": PlaneSpec(0, 1, 2, False, ("R", "L", "A", "P")),
    "coronal": PlaneSpec(1, 0, 2, True, ("R", "L", "S", "I")),
    "sagittal": PlaneSpec(2, 0, 1, True, ("A", "P", "S", "I")),
}

SLAB_MODES = ("none", "mip", "minip", "mean")


def _canonical_axes(direction: np.ndarray) -> tuple[tuple[int, int, int], tuple[bool, bool, bool], float]:
    """For canonical axes (S, P, L): the original array axis and whether it runs backwards.

    Returns (orig_axis, flip, alignment) where alignment is the smallest |cosine| between a
    canonical axis and the index axis chosen for it (1.0 = exactly aligned).
    """
    d = np.asarray(direction, dtype=float)
    best = None
    # canonical axis c <-> LPS component r = 2 - c; ITK index axis a <-> array axis 2 - a
    for perm in itertools.permutations(range(3)):
        score = sum(abs(d[2 - c, perm[c]]) for c in range(3))
        if best is None or score > best[0]:
            best = (score, perm)
    perm = best[1]
    orig_axis = tuple(2 - perm[c] for c in range(3))
    flip = tuple(bool(d[2 - c, perm[c]] < 0) for c in range(3))
    alignment = float(min(abs(d[2 - c, perm[c]]) for c in range(3)))
    return orig_axis, flip, alignment  # type: ignore[return-value]


class DisplayVolume:
    """A Volume seen in canonical (S, P, L) order, with plane extraction, thick slabs and a probe."""

    def __init__(self, volume: Volume, array: np.ndarray | None = None) -> None:
        """``array`` (optional) replaces the voxel values with an array of the same shape (e.g. a
        difference map in int32); geometry always comes from ``volume``."""
        self.volume = volume
        data = volume.array if array is None else array
        if data.shape != volume.array.shape:
            raise ValueError(f"array shape {data.shape} differs from the volume's {volume.array.shape}")
        self.orig_axis, self.flip, self.alignment = _canonical_axes(volume.direction)
        c = np.transpose(data, self.orig_axis)
        for ax, f in enumerate(self.flip):
            if f:
                c = np.flip(c, axis=ax)
        self.array = c
        self.shape: tuple[int, int, int] = tuple(int(s) for s in c.shape)  # type: ignore[assignment]
        # spacing along canonical axes: array axis a <-> ITK axis 2 - a
        self.spacing = tuple(float(volume.spacing[2 - a]) for a in self.orig_axis)

    @property
    def oblique(self) -> bool:
        """True when the volume's axes are not aligned with the patient axes (labels approximate)."""
        return self.alignment < 0.99

    # -- planes ----------------------------------------------------------------------------
    def n_slices(self, plane: str) -> int:
        return self.shape[PLANE_SPECS[plane].fixed]

    def pixel_mm(self, plane: str) -> tuple[float, float]:
        """(row height, column width) of one screen pixel of ``plane`` in mm."""
        spec = PLANE_SPECS[plane]
        return self.spacing[spec.rows], self.spacing[spec.cols]

    def plane_shape(self, plane: str) -> tuple[int, int]:
        spec = PLANE_SPECS[plane]
        return self.shape[spec.rows], self.shape[spec.cols]

    def slab_range(self, plane: str, index: int, thickness_mm: float) -> tuple[int, int]:
        """[start, stop) of the slices a slab of ``thickness_mm`` centred on ``index`` covers."""
        spec = PLANE_SPECS[plane]
        n = self.shape[spec.fixed]
        count = max(1, int(round(thickness_mm / self.spacing[spec.fixed])))
        start = index - (count - 1) // 2
        stop = start + count
        return max(0, start), min(n, stop)

    def plane_image(self, plane: str, index: int, slab: str = "none", thickness_mm: float = 0.0) -> np.ndarray:
        """The 2D image of ``plane`` at slice ``index`` in screen order (row 0 at the top).

        ``slab`` ``"mip"``/``"minip"``/``"mean"`` reduces the slices within ``thickness_mm`` around
        ``index`` (maximum, minimum, mean); ``"none"`` is the single slice (a view, no copy).
        """
        spec = PLANE_SPECS[plane]
        index = int(np.clip(index, 0, self.shape[spec.fixed] - 1))
        def sl(a, b):  # basic slicing: a view, no copy
            key = [slice(None)] * 3
            key[spec.fixed] = slice(a, b) if b is not None else a
            return self.array[tuple(key)]

        if slab == "none" or thickness_mm <= 0:
            img = sl(index, None)
        else:
            lo, hi = self.slab_range(plane, index, thickness_mm)
            if hi - lo <= 1:
                img = sl(index, None)
            elif slab == "mip":
                img = sl(lo, hi).max(axis=spec.fixed)
            elif slab == "minip":
                img = sl(lo, hi).min(axis=spec.fixed)
            elif slab == "mean":
                img = sl(lo, hi).mean(axis=spec.fixed, dtype=np.float32)
            else:
                raise ValueError(f"unknown slab mode {slab!r}; use one of {SLAB_MODES}")
        # remaining axes are in canonical order; rows are the lower canonical axis in every plane
        if spec.rows > spec.cols:  # never happens with PLANE_SPECS, kept for safety
            img = img.T
        if spec.row_flip:
            img = img[::-1]
        return img

    def to_screen(self, plane: str, cursor) -> tuple[int, int]:
        """Screen (row, col) of the canonical ``cursor`` (s, p, l) in ``plane``."""
        spec = PLANE_SPECS[plane]
        row = int(cursor[spec.rows])
        if spec.row_flip:
            row = self.shape[spec.rows] - 1 - row
        return row, int(cursor[spec.cols])

    def from_screen(self, plane: str, row: float, col: float, cursor) -> tuple[int, int, int]:
        """The canonical cursor after pointing at screen (row, col) of ``plane`` (its slice kept)."""
        spec = PLANE_SPECS[plane]
        out = [int(v) for v in cursor]
        r = int(np.clip(np.floor(row), 0, self.shape[spec.rows] - 1))
        c = int(np.clip(np.floor(col), 0, self.shape[spec.cols] - 1))
        if spec.row_flip:
            r = self.shape[spec.rows] - 1 - r
        out[spec.rows] = r
        out[spec.cols] = c
        return tuple(out)  # type: ignore[return-value]

    # -- probe -------------------------------------------------------------------------------
    def original_index(self, cursor) -> tuple[int, int, int]:
        """Index ``(k, j, i)`` in the original ``volume.array`` of the canonical ``cursor``."""
        idx = [0, 0, 0]
        for c in range(3):
            v = int(cursor[c])
            if self.flip[c]:
                v = self.shape[c] - 1 - v
            idx[self.orig_axis[c]] = v
        return tuple(idx)  # type: ignore[return-value]

    def canonical_index(self, kji) -> tuple[int, int, int]:
        """Inverse of :meth:`original_index`."""
        out = [0, 0, 0]
        for c in range(3):
            v = int(kji[self.orig_axis[c]])
            if self.flip[c]:
                v = self.shape[c] - 1 - v
            out[c] = v
        return tuple(out)  # type: ignore[return-value]

    def value(self, cursor) -> float:
        return self.array[tuple(int(v) for v in cursor)].item()

    def probe(self, cursor) -> dict:
        """What the HU probe shows: value, original voxel index and LPS position in mm."""
        kji = self.original_index(cursor)
        lps = self.volume.index_to_lps(*kji)
        return {"hu": self.value(cursor), "index_kji": kji, "lps_mm": tuple(float(v) for v in lps),
                "cursor": tuple(int(v) for v in cursor)}

    def lps(self, cursor) -> np.ndarray:
        """LPS position (mm) of the centre of the canonical voxel ``cursor``."""
        return self.volume.index_to_lps(*self.original_index(cursor))

    def cursor_at_lps(self, lps) -> tuple[int, int, int]:
        """The canonical voxel nearest to the LPS point ``lps`` (mm), clamped into the volume.

        How a view keeps its crosshair on the same patient position when the volume it shows is
        replaced by a grown or re-gridded one (:meth:`~ctstudio.app.widgets.triplanar.TriPlanar.update_volume`).
        """
        kji = np.rint(self.volume.lps_to_index(lps)).astype(int)
        kji = np.clip(kji, 0, np.asarray(self.volume.shape) - 1)
        return self.canonical_index(tuple(int(v) for v in kji))

    def canonical_axis_of(self, array_axis: int) -> int:
        """The canonical axis (0 = S, 1 = P, 2 = L) along which ``volume.array`` axis ``array_axis`` runs."""
        return self.orig_axis.index(int(array_axis))

    def centre(self) -> tuple[int, int, int]:
        return tuple(s // 2 for s in self.shape)  # type: ignore[return-value]


def difference_array(a: Volume, b: Volume) -> np.ndarray:
    """A - B in HU as int32 (never wraps). Shapes must match (see :func:`resample_to`)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return a.array.astype(np.int32) - b.array.astype(np.int32)


def resample_to(moving: Volume, reference: Volume, fill: int = -1024) -> tuple[Volume, str]:
    """``moving`` resampled (trilinear) onto ``reference``'s grid; returns (volume, how).

    Positions are matched in patient space (LPS mm) when the two volumes overlap there; when
    they do not (e.g. a generated volume with a made-up origin) the field of view is stretched
    index to index instead. ``how`` says which was done, for the status bar.
    """
    from scipy import ndimage

    ref = reference
    nz, ny, nx = ref.shape

    def corners(v: Volume) -> np.ndarray:  # physical bounding box corners
        z, y, x = v.shape
        return np.array([v.index_to_lps(k, j, i) for k in (0, z - 1) for j in (0, y - 1) for i in (0, x - 1)])

    ca, cb = corners(ref), corners(moving)
    overlap = np.all(np.minimum(ca.max(0), cb.max(0)) >= np.maximum(ca.min(0), cb.min(0)) - 1e-6)
    if overlap:
        src_axes = np.asarray(moving.direction, dtype=float) * np.asarray(moving.spacing, dtype=float)[None, :]
        arr = resample_affine(moving.array, moving.origin, src_axes, ref.origin, ref.direction, ref.spacing,
                              ref.shape, order=1, fill=fill)
        how = "resampled B onto A's grid (patient position, trilinear)"
    else:
        factors = [r / m for r, m in zip(ref.shape, moving.shape)]
        out = ndimage.zoom(moving.array.astype(np.float32), factors, order=1, mode="nearest")
        out = out[:nz, :ny, :nx]
        if out.shape != ref.shape:  # zoom rounding
            pad = [(0, r - s) for r, s in zip(ref.shape, out.shape)]
            out = np.pad(out, pad, mode="edge")
        arr = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
        how = "B does not overlap A in patient space: stretched B's field of view to A's shape (trilinear)"
    vol = moving.with_array(arr, step=how, spacing=ref.spacing, origin=ref.origin, direction=ref.direction)
    return vol, how
