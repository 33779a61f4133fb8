"""Reading a DICOM series (or a single file) into a HU :class:`Volume`: headers, series choice, geometry
checks, the reading policy for gantry tilt and irregular spacing, pixels, and what ``ctstudio info`` reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ctstudio.errors import GeometryError, SeriesError
from ctstudio.io.dicom.geometry import Geometry, analyse, spacing_problem, tilted_axes
from ctstudio.io.dicom.header import SliceHeader
from ctstudio.io.dicom.pixels import load_pixels
from ctstudio.io.dicom.series import SeriesInfo, select_headers
from ctstudio.io.policy import ERROR, RESAMPLE, ReadPolicy, how_to_open
from ctstudio.jobs import Progress, check_cancel
from ctstudio.volume import Metadata, Provenance, Volume

LOAD_JOB = "load"


def volume_metadata(h: SliceHeader) -> Metadata:
    """The Volume metadata of a series, from its first slice's header."""
    present = {k: v for k, v in h.metadata.items() if v not in (None, "")}
    return Metadata.from_dict(present | {"modality": h.modality or "CT"})


def read_dicom(path, *, series_uid: str | None = None, policy: ReadPolicy = ReadPolicy(),
               workers: int | None = None, callback=None, cancel=None) -> Volume:
    """Read a DICOM folder (one series of it) or a single DICOM file as a HU Volume.

    ``policy``: what to do with gantry tilt and irregular slice spacing (:mod:`ctstudio.io.policy`).
    ``workers``: >= 2 decodes long compressed series in that many processes (opt-in; see
    :func:`~ctstudio.io.dicom.pixels.load_pixels`). ``callback`` receives :mod:`ctstudio.jobs` events of
    job ``"load"``, unit ``"file"``: ``"scan"`` while the folder's headers are read, ``"read"`` while the
    chosen series' pixels are, ``"resample"`` before a resampling, ``"done"`` at the end (``done``
    counts the files of both passes). ``cancel`` is checked before every file.
    """
    path = Path(path)
    progress = Progress(LOAD_JOB, total=None, unit="file", callback=callback)
    scan, headers = select_headers(path, series_uid, progress, cancel)
    scanned = 0 if scan is None else scan.n_files
    progress.total = scanned + len(headers)
    return build_volume(analyse(headers, path), path, policy, workers, progress, cancel, done_before=scanned)


def build_volume(geo: Geometry, where: Path, policy: ReadPolicy, workers: int | None = None,
                 progress: Progress | None = None, cancel=None, done_before: int = 0) -> Volume:
    """Check the geometry against ``policy`` (refusing what it says to refuse), read the pixels, then
    resample or stack them as acquired as the policy says, recording what was done in the provenance."""
    progress = progress or Progress(LOAD_JOB, total=done_before + len(geo.headers), unit="file")
    if geo.duplicates:
        a, b = geo.duplicates[0]
        raise SeriesError(f"{len(geo.duplicates)} duplicate slice position(s), e.g. {a} and {b} lie at the same place",
                          path=where, hint="the folder mixes two acquisitions or copies; keep one file per position")
    problem = spacing_problem(geo)
    if problem and policy.spacing == ERROR:
        cls = SeriesError if geo.missing and not geo.nonuniform else GeometryError
        exc = cls(problem, path=where, hint=how_to_open("spacing"))
        exc.policy_question = "spacing"  # another reading policy opens it (the window asks which)
        raise exc
    if geo.tilted and policy.tilt == ERROR:
        gt = geo.headers[0].gantry_tilt
        exc = GeometryError(f"gantry tilt of {geo.tilt_deg:.2f} degrees"
                            + (f" (GantryDetectorTilt {gt:g})" if gt is not None else "")
                            + ": the slices are not stacked along their normal", path=where,
                            hint=how_to_open("tilt"))
        exc.policy_question = "tilt"
        raise exc
    steps: list[str] = []
    array = load_pixels(geo.headers, workers, progress, cancel, done_before)
    done = done_before + len(geo.headers)
    if problem and policy.spacing == RESAMPLE:
        from ctstudio.imaging.resample import resample_z_positions, uniform_positions

        check_cancel(cancel, "reading stopped before resampling the slice spacing")
        progress.event("resample", done, what="slice spacing")
        new_positions, dz = uniform_positions(geo.positions, float(np.median(geo.steps_mm)))
        array = resample_z_positions(array, geo.positions, new_positions)
        geo.step = geo.step / np.linalg.norm(geo.step) * dz
        geo.z_spacing = dz
        steps.append(f"resampled to uniform {dz:.4g} mm slice spacing ({problem})")
    elif problem:  # as acquired
        dz = float(np.median(geo.steps_mm))
        geo.step = geo.step / np.linalg.norm(geo.step) * dz
        geo.z_spacing = dz
        steps.append(f"opened as acquired: {problem}; the slices are stacked at a uniform {dz:.4g} mm "
                     "(slice positions approximate)")
    origin = geo.headers[0].position if geo.headers[0].position is not None else np.zeros(3)
    if geo.tilted and policy.tilt == RESAMPLE:
        from ctstudio.imaging.resample import axial_grid_for_sheared, resample_affine

        check_cancel(cancel, "reading stopped before resampling the gantry tilt")
        progress.event("resample", done, what="gantry tilt")
        axes = tilted_axes(geo)
        new_origin, direction, spacing, new_shape = axial_grid_for_sheared(array.shape, origin, axes)
        array = resample_affine(array, origin, axes, new_origin, direction, spacing, new_shape)
        origin = new_origin
        steps.append(f"resampled from a {geo.tilt_deg:.2f} degree gantry tilt onto an axial grid")
    else:
        direction = np.stack([geo.row, geo.col, geo.normal], axis=1)
        dz = geo.z_spacing
        if geo.tilted:  # as acquired: stacked along the slice normal, the in-plane shift ignored
            dz = abs(float(geo.step @ geo.normal))
            steps.append(f"opened as acquired: the {geo.tilt_deg:.2f} degree gantry tilt is not corrected; the "
                         f"slices are stacked along their normal at {dz:.4g} mm (in-plane positions approximate)")
        spacing = (geo.pixel_spacing_xy[0], geo.pixel_spacing_xy[1], dz)
    model, version = geo.headers[0].synthetic_model or (None, None)
    provenance = Provenance(source_files=tuple(str(h.path) for h in geo.headers), model=model,
                            model_version=version or None, steps=tuple(steps))
    volume = Volume(array, spacing=spacing, origin=tuple(origin), direction=direction,
                    metadata=volume_metadata(geo.headers[0]), provenance=provenance)
    progress.event("done", done, shape=volume.shape)
    return volume


def inspect_dicom(path, *, series_uid: str | None = None, policy: ReadPolicy = ReadPolicy.resample(),
                  workers: int | None = None, callback=None, cancel=None) -> tuple[dict[str, Any], Volume]:
    """The series found, the chosen one's geometry checks, and its volume read with ``policy``
    (by default resampled where the geometry needs it, so ``ctstudio info`` can describe any series)."""
    path = Path(path)
    progress = Progress(LOAD_JOB, total=None, unit="file", callback=callback)
    scan, headers = select_headers(path, series_uid, progress, cancel)
    scanned = 0 if scan is None else scan.n_files
    progress.total = scanned + len(headers)
    report: dict[str, Any] = {}
    if scan is not None:
        report["series"] = [s.to_dict() for s in scan.series]
        report["ignored_files"] = [{"file": f, "reason": r} for f, r in scan.ignored[:20]]
        report["n_ignored_files"] = len(scan.ignored)
    else:
        h = headers[0]
        report["series"] = [SeriesInfo(h.series_uid, h.modality, h.description, [h]).to_dict()]
    report["chosen_series"] = headers[0].series_uid
    geo = analyse(headers, path)
    g = geo.report()
    report["geometry"] = g
    report["tilt"] = f"{g['tilt_deg']:.2f} degrees (gantry tilt)" if geo.tilted else "none"
    if geo.missing:
        report["spacing_uniformity"] = "missing slices: " + ", ".join(
            f"{m['n_missing']} after {m['after']}" for m in geo.missing)
    elif geo.nonuniform:
        report["spacing_uniformity"] = f"non-uniform ({g['step_min_mm']} to {g['step_max_mm']} mm)"
    elif len(headers) == 1:
        report["spacing_uniformity"] = "single slice"
    else:
        report["spacing_uniformity"] = f"uniform ({geo.z_spacing:.4g} mm)"
    volume = build_volume(geo, path, policy, workers, progress, cancel, done_before=scanned)
    return report, volume

