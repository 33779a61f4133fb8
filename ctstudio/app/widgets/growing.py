"""GrowingVolume: the seed volume and the slices a generation run makes, as ONE volume that grows in place.

Plain numpy (no Qt, no torch): the Generate tab feeds it the pipeline's slice events and shows
:meth:`GrowingVolume.volume` through ``MainWindow.update_volume``.

* The **seed side** of the seed volume is kept: the seed slice and the slices on the side away from the
  generation direction (generation goes inferior, so for the sample's seed slice 20 these are slices
  20..92). The real slices where the generated ones go are not shown in the growing volume (the Generate tab
  compares them with the generated ones on request).
* Each generated slice goes where the pipeline says it belongs in the seed volume's index
  (``target_index``): below 0 it is prepended and the origin moves so every slice keeps its patient
  position; past the end it is appended.
* When the model's grid differs from the seed's (a 512x512 scan, a 64x64 model), the generated slices are on
  the model's grid, so the kept seed slices are resampled in-plane to that grid (the one resize the pipeline
  uses for its seed slices) and the volume has the model's in-plane spacing. Positions follow the pipeline's
  own result (:func:`ctstudio.diffusion.ascii.assemble_volume`): index (k, 0, 0) keeps the seed's position.
* An all-air run has no seed volume: slice j sits at z = -j x the model's slice spacing (as the pipeline
  places it), so each new slice is prepended below the last.
"""

from __future__ import annotations

import numpy as np

from ctstudio.imaging.slices import inferior_step, resize_slices
from ctstudio.volume import Metadata, Provenance, Volume

AIR_HU = -1024


def _to_int16(hu: np.ndarray) -> np.ndarray:
    """HU as the pipeline stores them: rounded, clipped to the 12-bit range."""
    return np.clip(np.rint(np.asarray(hu, np.float32)), -1024, 3071).astype(np.int16)


class GrowingVolume:
    """See the module doc. ``size``: the model's slice size; ``air_spacing``: (x, y, z) mm for an all-air run."""

    def __init__(self, seed: Volume | None, seed_slice: int | None, size: int,
                 air_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0), model: str = "",
                 model_version: str | None = None) -> None:
        self.seed = seed
        self.size = int(size)
        self.model = model
        self.model_version = model_version
        self.resampled_from: tuple[int, int] | None = None  # (h, w) of the seed when it was resampled
        self.generated: dict[int, np.ndarray] = {}  # seed index -> int16 slice
        if seed is None:
            self.direction = np.eye(3)
            self.spacing = tuple(float(v) for v in air_spacing)
            self.origin0 = np.zeros(3)  # LPS of seed index 0: generated slice j is index -j
            self.array: np.ndarray | None = None
            self.offset = 0
            self.seed_slice = None
            self.metadata = Metadata(series_description="SYNTHETIC (generated from an all-air seed)")
            return
        z, h, w = seed.shape
        i = z - 1 if seed_slice is None else int(seed_slice)
        self.seed_slice = i
        step = inferior_step(seed)
        lo, hi = (i, z - 1) if step < 0 else (0, i)
        kept = seed.array[lo:hi + 1]
        if (h, w) != (self.size, self.size):
            kept = _to_int16(resize_slices(kept.astype(np.float32), self.size))
            self.resampled_from = (h, w)
        self.array = np.ascontiguousarray(kept, dtype=np.int16)
        self.offset = lo  # the seed index of array row 0
        sx, sy, sz = seed.spacing
        self.spacing = (sx * w / self.size, sy * h / self.size, sz)
        self.direction = seed.direction
        self.origin0 = np.asarray(seed.origin, float)
        self.metadata = seed.metadata

    # -- geometry ---------------------------------------------------------------------------------------
    def lps_of(self, seed_index: int) -> np.ndarray:
        """LPS (mm) of voxel (seed_index, 0, 0) of the grid the generated slices live on."""
        return self.origin0 + self.direction @ (np.array([0.0, 0.0, float(seed_index)]) * np.asarray(self.spacing))

    def row_of(self, seed_index: int) -> int:
        """The array row (index along the first axis of :meth:`volume`) of a seed-volume index."""
        return int(seed_index) - self.offset

    @property
    def generated_range(self) -> tuple[int, int] | None:
        """(first, last) array rows holding generated slices, or None before the first."""
        if not self.generated:
            return None
        return self.row_of(min(self.generated)), self.row_of(max(self.generated))

    @property
    def n_generated(self) -> int:
        return len(self.generated)

    # -- growing ----------------------------------------------------------------------------------------
    def add(self, slice_hu: np.ndarray, target_index: int | None, index: int) -> int:
        """Place one generated slice; returns its array row. ``target_index``: the pipeline's (None for an
        all-air run, then ``index``, the slice's number in generation order, places it at seed index -index)."""
        target = -int(index) if target_index is None else int(target_index)
        sl = _to_int16(slice_hu)
        if sl.shape != (self.size, self.size):
            raise ValueError(f"a generated slice of shape {sl.shape} does not fit the model grid {self.size}")
        if self.array is None:
            self.array = sl[None].copy()
            self.offset = target
        row = target - self.offset
        n = self.array.shape[0]
        if row < 0:
            pad = np.full((-row, self.size, self.size), AIR_HU, np.int16)
            self.array = np.concatenate([pad, self.array])
            self.offset = target
            row = 0
        elif row >= n:
            pad = np.full((row - n + 1, self.size, self.size), AIR_HU, np.int16)
            self.array = np.concatenate([self.array, pad])
        self.array[row] = sl
        self.generated[target] = sl
        return row

    def provenance(self) -> Provenance:
        sources = tuple(self.seed.provenance.source_files) if self.seed is not None else ()
        rng = self.generated_range
        what = (f"slices {rng[0]}..{rng[1]} generated by {self.model}" if rng else "no slice generated yet")
        steps = (tuple(self.seed.provenance.steps) if self.seed is not None else ()) + (
            f"Generate tab: seed side of the seed volume{' resampled %dx%d -> %dx%d' % (self.resampled_from[1], self.resampled_from[0], self.size, self.size) if self.resampled_from else ''}"
            f" + {what}",)
        return Provenance(source_files=sources, model=self.model or None, model_version=self.model_version,
                          parameters={"generated_rows": list(rng) if rng else None}, steps=steps)

    def volume(self) -> Volume | None:
        """The seed side plus every generated slice so far (None for an all-air run before its first slice)."""
        if self.array is None:
            return None
        return Volume(self.array, spacing=self.spacing, origin=tuple(self.lps_of(self.offset)),
                      direction=self.direction, metadata=self.metadata, provenance=self.provenance())

    # -- the generated part and the real slices where it is -------------------------------------------------
    def _block(self, arr: np.ndarray, first: int, metadata: Metadata, provenance: Provenance) -> Volume:
        return Volume(np.ascontiguousarray(arr), spacing=self.spacing, origin=tuple(self.lps_of(first)),
                      direction=self.direction, metadata=metadata, provenance=provenance)

    def generated_volume(self, provenance: Provenance, metadata: Metadata | None = None) -> Volume | None:
        """The generated slices only (contiguous, seed-index order) with ``provenance``."""
        if not self.generated:
            return None
        lo, hi = min(self.generated), max(self.generated)
        arr = np.stack([self.generated.get(k, np.full((self.size, self.size), AIR_HU, np.int16))
                        for k in range(lo, hi + 1)])
        md = metadata or Metadata(series_description=f"SYNTHETIC ASCII {self.model}",
                                  slice_thickness=float(self.spacing[2]))
        return self._block(arr, lo, md, provenance)

    def real_continuation(self) -> tuple[Volume, Volume] | None:
        """(real, generated) over the generated slices that the seed volume also has (same grid: the real
        slices resampled in-plane like the seed slices); None when the seed has no slice there."""
        if self.seed is None or not self.generated:
            return None
        z = self.seed.shape[0]
        both = sorted(k for k in self.generated if 0 <= k < z)
        if not both:
            return None
        lo, hi = both[0], both[-1]
        if len(both) != hi - lo + 1:
            return None
        real = self.seed.array[lo:hi + 1]
        if self.resampled_from is not None:
            real = _to_int16(resize_slices(real.astype(np.float32), self.size))
        gen = np.stack([self.generated[k] for k in range(lo, hi + 1)])
        real_v = self._block(real, lo, self.seed.metadata, self.seed.provenance.with_step(
            f"slices {lo}..{hi} (the real continuation)"))
        gen_v = self._block(gen, lo, Metadata(series_description=f"SYNTHETIC ASCII {self.model}"),
                            Provenance(model=self.model or "generated", model_version=self.model_version))
        return real_v, gen_v
