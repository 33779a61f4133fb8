"""Helpers that build small DICOM series for the io tests (plus a check of the helpers themselves).

Series are written with ctstudio's own writer from a tiny phantom, then edited with pydicom to
create the cases a scanner produces (tilt, gaps, several series, compressed pixels...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from ctstudio.imaging.phantom import head_phantom
from ctstudio.io import write_volume
from ctstudio.volume import Volume

SHAPE = (8, 24, 20)  # z, y, x: small, and not square so rows/columns mix-ups show


def tiny_volume(seed: int = 0, shape=SHAPE, spacing=(0.8, 0.7, 2.0)) -> Volume:
    return head_phantom(shape, spacing=spacing, noise_sd=10.0, seed=seed)


def write_series(folder: Path, vol: Volume | None = None, **options) -> list[Path]:
    vol = tiny_volume() if vol is None else vol
    write_volume(vol, folder, format="dicom", **options)
    return sorted(Path(folder).glob("*.dcm"))


def edit(path: Path, **changes) -> None:
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        if v is None:
            if k in ds:
                delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path)


def positions(files) -> np.ndarray:
    return np.array([[float(v) for v in pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient]
                     for f in files])


def uneven_series(folder: Path, vol: Volume) -> list[Path]:
    """``vol`` written as a series whose slice steps are 2.0 mm but for one of 2.8 mm (slices 4 on moved 0.8 mm)."""
    files = write_series(folder, vol)
    z = positions(files)
    z[4:, 2] += 0.8
    for f, p in zip(files, z):
        edit(f, ImagePositionPatient=[f"{v:.6f}" for v in p])
    return files


def tilted_series(folder: Path, tilt_deg: float):
    """An axial-table series with the gantry tilted: IOP columns tilted, positions stepping along z.

    Voxel values are a linear function of the physical position, so the resampled grid can be
    checked voxel by voxel."""
    nz, ny, nx = 10, 24, 20
    sx = sy = 1.0
    dz = 2.0
    t = np.radians(tilt_deg)
    r, c = np.array([1.0, 0, 0]), np.array([0, np.cos(t), -np.sin(t)])
    origin = np.array([-10.0, -12.0, 100.0])
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    pts = origin + i[..., None] * sx * r + j[..., None] * sy * c + k[..., None] * np.array([0, 0, dz])
    values = 200 + 4 * pts[..., 1] + 3 * (pts[..., 2] - 100)
    vol = Volume.from_hu(values, spacing=(sx, sy, dz), origin=tuple(origin))
    files = write_series(folder, vol)
    for n, f in enumerate(files):
        p = origin + np.array([0, 0, dz]) * n
        edit(f, ImageOrientationPatient=[f"{v:.10f}" for v in (*r, *c)],
             ImagePositionPatient=[f"{v:.10f}" for v in p], GantryDetectorTilt=f"{tilt_deg:.1f}")
    return lambda q: 200 + 4 * q[..., 1] + 3 * (q[..., 2] - 100)


def test_helpers_write_a_readable_series(tmp_path):
    files = write_series(tmp_path / "s")
    assert len(files) == SHAPE[0]
    z = positions(files)[:, 2]
    assert np.allclose(np.diff(z), 2.0)
