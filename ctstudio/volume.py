"""Volume: a CT volume in Hounsfield units with its geometry, metadata and provenance.

Conventions (the same as ITK / SimpleITK, so geometry passes through unchanged):

* ``array`` is int16 HU indexed ``[z, y, x]`` (slice, row, column).
* ``spacing``, ``origin`` and the columns of ``direction`` are in *index order* ``(x, y, z)``
  (column i, row j, slice k), physical units mm, patient coordinates LPS.
* ``origin`` is the LPS position of the centre of voxel ``[0, 0, 0]``.
* ``direction`` is a 3x3 matrix whose column ``c`` is the LPS unit vector along index axis ``c``;
  the position of voxel ``(i, j, k)`` is ``origin + direction @ (spacing * (i, j, k))``.

A Volume is immutable in spirit: operations return new Volumes and append to the provenance.
This module does not import torch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctstudio.errors import ValueRangeError

#: The 12-bit CT range used by the models (ASCII paper): [-1024, 3071] HU.
HU_12BIT_MIN = -1024
HU_12BIT_MAX = 3071


@dataclass(frozen=True)
class Metadata:
    """Non-identifying acquisition metadata. Never holds names, IDs, dates or UIDs of a patient."""

    modality: str = "CT"
    kernel: str = ""
    series_description: str = ""
    slice_thickness: float | None = None
    manufacturer: str = ""
    manufacturer_model: str = ""
    kvp: float | None = None
    body_part: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Metadata":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Provenance:
    """Where the voxels came from: source files, or the model and parameters that produced them.

    ``steps`` records every transformation applied since (e.g. ``"clip 12-bit: 812 voxels"``),
    so an exported file says honestly what was done to it.
    """

    source_files: tuple[str, ...] = ()
    model: str | None = None
    model_version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    steps: tuple[str, ...] = ()

    @property
    def synthetic(self) -> bool:
        """True when a model produced (or rewrote) the pixels."""
        return self.model is not None

    def with_step(self, step: str) -> "Provenance":
        return dataclasses.replace(self, steps=self.steps + (step,))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["source_files"] = list(self.source_files)
        d["steps"] = list(self.steps)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Provenance":
        return cls(
            source_files=tuple(d.get("source_files", ())),
            model=d.get("model"),
            model_version=d.get("model_version"),
            parameters=dict(d.get("parameters", {})),
            steps=tuple(d.get("steps", ())),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)


def _as_vec3(value, name: str) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueRangeError(f"{name} must be three finite numbers, got {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True, eq=False)
class Volume:
    """A CT volume: int16 HU array ``[z, y, x]`` with geometry (ITK/LPS conventions, see module doc)."""

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: Metadata = field(default_factory=Metadata)
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        arr = self.array
        if not isinstance(arr, np.ndarray):
            raise ValueRangeError(f"Volume.array must be a numpy array, got {type(arr).__name__}")
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        if arr.ndim != 3 or 0 in arr.shape:
            raise ValueRangeError(f"a volume needs a non-empty 3D array (z, y, x), got shape {arr.shape}")
        if arr.dtype != np.int16:
            raise ValueRangeError(
                f"Volume.array must be int16 HU, got {arr.dtype}; use Volume.from_hu() to convert"
            )
        object.__setattr__(self, "array", arr)
        spacing = _as_vec3(self.spacing, "spacing")
        if min(spacing) <= 0:
            raise ValueRangeError(f"spacing must be positive, got {spacing}")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", _as_vec3(self.origin, "origin"))
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if not np.allclose(np.abs(np.linalg.det(direction)), 1.0, atol=1e-3):
            raise ValueRangeError(f"direction must be a rotation (|det| = 1), got {direction.tolist()}")
        direction = direction.copy()
        direction.setflags(write=False)
        object.__setattr__(self, "direction", direction)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_hu(cls, hu: np.ndarray, **kwargs) -> "Volume":
        """Build a Volume from any real-valued HU array: rounds, and refuses NaN/Inf or int16 overflow."""
        hu = np.asarray(hu)
        if hu.dtype == np.int16:
            return cls(hu, **kwargs)
        if hu.dtype.kind == "f":
            if not np.all(np.isfinite(hu)):
                bad = int(np.size(hu) - np.count_nonzero(np.isfinite(hu)))
                raise ValueRangeError(f"the image holds {bad} NaN or infinite values; CT voxels must be finite HU")
            hu = np.rint(hu)
        elif hu.dtype.kind not in "iub":
            raise ValueRangeError(f"cannot use a {hu.dtype} array as HU")
        lo, hi = (float(hu.min()), float(hu.max())) if hu.size else (0.0, 0.0)
        info = np.iinfo(np.int16)
        if lo < info.min or hi > info.max:
            raise ValueRangeError(
                f"HU values span [{lo:g}, {hi:g}], beyond what int16 can hold [{info.min}, {info.max}]",
                hint="is this really a CT in HU? check the rescale slope/intercept",
            )
        return cls(hu.astype(np.int16), **kwargs)

    def replace(self, **changes) -> "Volume":
        """A copy with some fields changed (``array`` must stay int16)."""
        return dataclasses.replace(self, **changes)

    def with_array(self, array: np.ndarray, step: str | None = None, **changes) -> "Volume":
        prov = changes.pop("provenance", self.provenance)
        if step:
            prov = prov.with_step(step)
        return dataclasses.replace(self, array=array, provenance=prov, **changes)

    # -- geometry ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Spacing in array order (z, y, x), handy for numpy/scipy."""
        return (self.spacing[2], self.spacing[1], self.spacing[0])

    def index_to_lps(self, k: float, j: float, i: float) -> np.ndarray:
        """LPS position (mm) of array index ``[k, j, i]`` (slice, row, column)."""
        ijk = np.array([i, j, k], dtype=float) * np.asarray(self.spacing)
        return np.asarray(self.origin) + self.direction @ ijk

    def lps_to_index(self, point) -> np.ndarray:
        """Continuous array index ``[k, j, i]`` of an LPS point (mm)."""
        rel = np.asarray(point, dtype=float) - np.asarray(self.origin)
        ijk = np.linalg.solve(self.direction, rel) / np.asarray(self.spacing)
        return ijk[::-1]

    @property
    def slice_normal(self) -> np.ndarray:
        return self.direction[:, 2].copy()

    # -- values -----------------------------------------------------------------------------
    def hu_stats(self) -> dict[str, float]:
        a = self.array
        return {"min": int(a.min()), "max": int(a.max()), "mean": float(a.mean(dtype=np.float64))}

    def count_outside(self, lo: int = HU_12BIT_MIN, hi: int = HU_12BIT_MAX) -> int:
        a = self.array
        return int(np.count_nonzero((a < lo) | (a > hi)))

    def clip_to_12bit(self, lo: int = HU_12BIT_MIN, hi: int = HU_12BIT_MAX) -> "Volume":
        """Clip to the 12-bit CT range, recording how many voxels changed in the provenance.

        Clipping is always this explicit step; no reader or writer clips silently.
        """
        n = self.count_outside(lo, hi)
        if n == 0:
            return self
        clipped = np.clip(self.array, lo, hi).astype(np.int16)
        return self.with_array(clipped, step=f"clip to [{lo}, {hi}] HU: {n} voxels changed")

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (the body of ``ctstudio info --json``)."""
        return {
            "shape_zyx": list(self.shape),
            "spacing_xyz_mm": [round(s, 6) for s in self.spacing],
            "origin_lps_mm": [round(o, 6) for o in self.origin],
            "direction": np.round(self.direction, 6).tolist(),
            "hu": self.hu_stats(),
            "voxels_outside_12bit": self.count_outside(),
            "metadata": self.metadata.to_dict(),
            "provenance": self.provenance.to_dict(),
        }

    def __repr__(self) -> str:
        z, y, x = self.shape
        sx, sy, sz = self.spacing
        return (
            f"Volume({z}x{y}x{x}, spacing {sx:.4g}x{sy:.4g}x{sz:.4g} mm, "
            f"kernel={self.metadata.kernel or '-'}, synthetic={self.provenance.synthetic})"
        )
