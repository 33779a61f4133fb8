"""Geometry checks of a DICOM series: sort the slices along their normal and measure gantry tilt,
slice spacing (uniform or not), missing slices and duplicate positions.

Slices are ordered by ImagePositionPatient projected on the slice normal (row x column of
ImageOrientationPatient), never by file name or InstanceNumber (which only breaks ties).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctstudio.errors import GeometryError, SeriesError
from ctstudio.io.dicom.header import SliceHeader

#: two slices closer than this (mm) lie at the same place
DUPLICATE_TOL_MM = 1e-3


@dataclass
class Geometry:
    """The geometry of a sorted series and what is wrong with it (nothing, ideally)."""

    headers: list[SliceHeader]  # sorted along the slice normal
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    pixel_spacing_xy: tuple[float, float]
    positions: np.ndarray  # distance of each slice along the stacking direction, from the first (mm)
    step: np.ndarray  # mean LPS step vector between slices
    z_spacing: float
    tilt_deg: float = 0.0
    tilted: bool = False
    nonuniform: bool = False
    max_step_deviation_mm: float = 0.0
    missing: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    steps_mm: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        st = np.asarray(self.steps_mm) if self.steps_mm else np.zeros(0)
        return {
            "n_slices": len(self.headers),
            "tilt_deg": round(self.tilt_deg, 4),
            "tilted": self.tilted,
            "slice_spacing_mm": round(self.z_spacing, 6),
            "spacing_uniform": not self.nonuniform and not self.missing,
            "step_min_mm": round(float(st.min()), 6) if st.size else None,
            "step_max_mm": round(float(st.max()), 6) if st.size else None,
            "missing_slices": self.missing,
            "duplicate_positions": [list(d) for d in self.duplicates],
        }


def orthonormal(iop: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    if nr < 1e-6 or nc < 1e-6 or abs(r @ c) / (nr * nc) > 1e-3:
        raise GeometryError(f"ImageOrientationPatient {list(iop)} is not two orthogonal unit vectors", path=path)
    return r / nr, c / nc


def analyse(headers: list[SliceHeader], folder: Path | None = None) -> Geometry:
    """Sort ``headers`` along the slice normal and measure tilt, spacing, gaps and duplicates."""
    where = folder or headers[0].path
    h0 = headers[0]
    ps = h0.pixel_spacing or (1.0, 1.0)
    if h0.orientation is None:
        if len(headers) > 1:
            raise SeriesError(f"{len(headers)} slices but no ImageOrientationPatient: the slices cannot be ordered",
                              path=where)
        row, col = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    else:
        row, col = orthonormal(h0.orientation, h0.path)
    normal = np.cross(row, col)
    if len(headers) == 1:
        dz = abs(h0.metadata.get("slice_thickness") or h0.spacing_between or 1.0) or 1.0
        return Geometry(headers=list(headers), row=row, col=col, normal=normal, pixel_spacing_xy=(ps[1], ps[0]),
                        positions=np.zeros(1), step=normal * dz, z_spacing=float(dz))
    sizes = {}
    for h in headers:
        sizes.setdefault((h.rows, h.columns), []).append(h.path.name)
    if len(sizes) > 1:
        desc = "; ".join(f"{r}x{c}: {len(v)} files (e.g. {v[0]})" for (r, c), v in sizes.items())
        raise SeriesError(f"the slices of one series differ in size (Rows x Columns): {desc}", path=where,
                          hint="remove the odd files (a localizer?) or choose another series")
    no_pos = [h.path.name for h in headers if h.position is None or h.orientation is None]
    if no_pos:
        raise SeriesError(f"{len(no_pos)} slices lack ImagePositionPatient/ImageOrientationPatient "
                          f"(e.g. {no_pos[0]}): the slices cannot be ordered", path=where)
    for h in headers:
        if np.max(np.abs(h.orientation - h0.orientation)) > 1e-4:
            raise SeriesError(f"the slice orientation changes within the series ({h0.path.name}: "
                              f"{list(h0.orientation)}, {h.path.name}: {list(h.orientation)})", path=where,
                              hint="this is not one stack of parallel slices")
    pos = np.array([h.position for h in headers])
    proj = pos @ normal
    order = np.lexsort((np.array([h.instance if h.instance is not None else 0 for h in headers]), proj))
    headers = [headers[i] for i in order]
    pos, proj = pos[order], proj[order]
    # duplicates: two slices at the same place
    diffs = np.diff(proj)
    dups = [(headers[k].path.name, headers[k + 1].path.name) for k in np.nonzero(diffs < DUPLICATE_TOL_MM)[0]
            if np.linalg.norm(pos[k + 1] - pos[k]) < DUPLICATE_TOL_MM * 10]
    mean_step = (pos[-1] - pos[0]) / (len(headers) - 1)
    if np.linalg.norm(mean_step) < DUPLICATE_TOL_MM:
        unit = normal
    else:
        unit = mean_step / np.linalg.norm(mean_step)
    along = (pos - pos[0]) @ unit
    steps = np.diff(along)
    geo = Geometry(headers=headers, row=row, col=col, normal=normal, pixel_spacing_xy=(ps[1], ps[0]),
                   positions=along, step=mean_step, z_spacing=float(np.linalg.norm(mean_step)),
                   duplicates=dups, steps_mm=[float(s) for s in steps])
    if dups:
        return geo
    # tilt: the stack advances along `unit`, which is not the slice normal
    cosang = float(np.clip(abs(unit @ normal), -1, 1))
    geo.tilt_deg = math.degrees(math.acos(cosang))
    drift = float(np.linalg.norm((pos[-1] - pos[0]) - ((pos[-1] - pos[0]) @ normal) * normal))
    geo.tilted = drift > max(0.01, 0.05 * min(ps))
    if not geo.tilted:
        geo.tilt_deg = 0.0 if geo.tilt_deg < 1e-3 else geo.tilt_deg
    # missing slices and non-uniform steps
    m = float(np.median(steps))
    ratio = steps / m
    slots = np.rint(ratio).astype(int)
    for k in np.nonzero((slots >= 2) & (np.abs(ratio - slots) < 0.25))[0]:
        geo.missing.append({"after": headers[k].path.name, "before": headers[k + 1].path.name,
                            "gap_mm": round(float(steps[k]), 4), "n_missing": int(slots[k] - 1)})
    slots = np.maximum(slots, 1)
    slot_index = np.concatenate([[0], np.cumsum(slots)])
    if slot_index[-1] > 0:
        slope, icpt = np.polyfit(slot_index, along, 1)
        resid = along - (slope * slot_index + icpt)
        geo.max_step_deviation_mm = float(np.max(np.abs(steps - m)))
        tol = max(0.1 * m, 0.02)
        geo.nonuniform = bool(np.max(np.abs(resid)) > tol or np.any(np.abs(ratio - slots) >= 0.25))
        geo.z_spacing = float(slope) if not geo.nonuniform else m
    return geo


def tilted_axes(geo: Geometry) -> np.ndarray:
    """The 3x3 matrix whose columns step one voxel along x, y and from slice to slice (LPS mm): a shear when tilted."""
    return np.stack([geo.row * geo.pixel_spacing_xy[0], geo.col * geo.pixel_spacing_xy[1], geo.step], axis=1)


def spacing_problem(geo: Geometry) -> str:
    """What is wrong with the slice spacing, in words (``""`` when it is uniform without gaps)."""
    if geo.missing:
        what = ", ".join(f"{m['n_missing']} between {m['after']} and {m['before']} (gap {m['gap_mm']} mm)"
                         for m in geo.missing)
        return f"missing slice(s): {what}; the usual step is {np.median(geo.steps_mm):.4g} mm"
    if geo.nonuniform:
        return f"non-uniform slice spacing: steps from {min(geo.steps_mm):.4g} to {max(geo.steps_mm):.4g} mm"
    return ""
