"""What the Calibrate tab's IC-Net inspector computes, without Qt: ROI statistics per slice, calibration
profiles of a generated volume, the drift of one real slice, and the mu sweep as a job.

* :func:`roi_profile`: per axial slice, the mean and SD (HU) of the pixels inside the IC-Net ROI
  (``roi.lower < HU < roi.upper``: the pixels a calibrator touches, :mod:`ctstudio.diffusion.calibrate`).
* :func:`calibration_profile`: a generated volume before IC-Net, after IC-Net and after histogram matching
  (each calibrated slice by slice against the calibrated slice before it, as ``ctstudio calibrate`` does);
  yields ``slice`` events and returns a :class:`CalibrationProfile` with the calibrated arrays, so a click on
  a point of the plot shows that slice at once.
* :func:`drift_view`: one real slice drifted by ``mu`` (IC-Net's training drift), calibrated by each
  calibrator against the slice before it, with the ROI MAE in HU of each
  (:func:`ctstudio.metrics.robustness.drift_case`: the same figures as ``robustness_curve``).
* :func:`mu_sweep`: ROI MAE against mu over the slices of a volume, one ``mu`` event per mu (the row it
  finished), cancel checked per slice; :func:`sweep_csv` writes it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import ICNET_ROI, HURange
from ctstudio.jobs import Progress, check_cancel
from ctstudio.volume import Volume

#: the mu range of the inspector's slider and sweep (the ASCII paper's robustness figure)
MU_MIN, MU_MAX = 0.70, 1.30


def sweep_mus(step: float = 0.05, lo: float = MU_MIN, hi: float = MU_MAX) -> list[float]:
    """``lo, lo + step, ... hi`` rounded to 1e-6 (0.70 ... 1.30 by 0.05: 13 values)."""
    if step <= 0:
        raise InputError(f"the mu step must be positive, not {step}")
    n = int(round((hi - lo) / step))
    return [round(lo + i * step, 6) for i in range(n + 1)]


def check_ct_range(array: np.ndarray, what: str = "the volume") -> None:
    """InputError when ``array`` does not look like CT in HU (air near -1000 HU).

    Raw stored values (no rescale slope/intercept applied) start at 0 or above; IC-Net's ROI [-150, 150]
    HU means nothing on them."""
    a = np.asarray(array)
    if a.size == 0:
        raise InputError(f"{what} is empty")
    lo, hi = float(a.min()), float(a.max())
    if lo >= -200:
        raise InputError(f"{what} does not look like CT in HU: its values run from {lo:g} to {hi:g}, with no air "
                         "(about -1000 HU)", hint="open a CT in Hounsfield units (raw stored values need the "
                                                  "rescale slope and intercept applied)")


def roi_profile(array: np.ndarray, roi: HURange = ICNET_ROI) -> dict:
    """Per axial slice of ``array`` (z, y, x, HU): ``mean`` and ``sd`` (population SD) of the pixels with
    ``roi.lower < HU < roi.upper``, and their ``count`` (NaN mean and SD where a slice has none)."""
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    inside = (a > roi.lower) & (a < roi.upper)
    count = inside.reshape(len(a), -1).sum(1)
    s1 = np.where(inside, a, 0.0).reshape(len(a), -1).sum(1)
    s2 = np.where(inside, a * a, 0.0).reshape(len(a), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, s1 / np.maximum(count, 1), np.nan)
        var = np.where(count > 0, s2 / np.maximum(count, 1) - mean ** 2, np.nan)
    return {"mean": mean, "sd": np.sqrt(np.maximum(var, 0.0)), "count": count}


def slice_positions_mm(volume: Volume) -> np.ndarray:
    """The patient z (LPS, mm) of each axial slice of ``volume``: the axis on which a generated volume and its
    real seed line up."""
    k = np.arange(volume.shape[0], dtype=np.float64)
    first = volume.index_to_lps(0, 0, 0)
    step = volume.index_to_lps(1, 0, 0) - first
    return first[2] + k * step[2]


@dataclass
class CalibrationProfile:
    """A volume before and after calibration, and the ROI statistics of each, per slice."""

    z_mm: np.ndarray
    before: np.ndarray  # (z, y, x) float32 HU: the volume as given
    icnet: np.ndarray  # after IC-Net
    histogram: np.ndarray  # after histogram matching
    stats: dict  # "before" / "icnet" / "histogram" -> roi_profile(...)
    icnet_name: str = "IC-Net"


def calibration_profile(volume: Volume, icnet: Callable, roi: HURange = ICNET_ROI, direction: str = "inferior",
                        cancel=None) -> Generator[dict, None, CalibrationProfile]:
    """``volume`` calibrated by ``icnet`` (a calibrator, e.g. :class:`~ctstudio.diffusion.calibrate.ICNetCalibrator`)
    and by histogram matching, each with :func:`ctstudio.diffusion.calibrate.iter_calibrate` (the anchor slice
    stays, every other slice is calibrated against the calibrated slice before it). Yields a ``slice`` event per
    slice and method (``method``: "icnet" or "histogram"; ``index``); returns a :class:`CalibrationProfile`."""
    from ctstudio.diffusion.calibrate import histogram_match, iter_calibrate

    check_ct_range(volume.array, "the generated volume")
    n = volume.shape[0]
    progress = Progress("inspect", 2 * n, "slice")
    outs = {}
    for offset, (method, cal) in enumerate((("icnet", icnet), ("histogram", histogram_match))):
        job = iter_calibrate(volume, cal, direction=direction, label=method, cancel=cancel)
        while True:
            try:
                ev = next(job)
            except StopIteration as stop:
                outs[method] = stop.value.array.astype(np.float32)
                break
            check_cancel(cancel, f"inspection cancelled in {method}")
            yield progress.event("slice", offset * n + ev["done"], method=method, index=ev.get("index"))
    before = volume.array.astype(np.float32)
    stats = {"before": roi_profile(before, roi), "icnet": roi_profile(outs["icnet"], roi),
             "histogram": roi_profile(outs["histogram"], roi)}
    return CalibrationProfile(slice_positions_mm(volume), before, outs["icnet"], outs["histogram"], stats,
                              getattr(icnet, "name", "IC-Net"))


def drift_view(volume_hu: np.ndarray, k: int, mu: float, calibrators: dict[str, Callable],
               roi: HURange = ICNET_ROI) -> dict:
    """Slice ``k`` of a real volume drifted by ``mu`` and calibrated by each of ``calibrators`` (name -> callable)
    against slice ``k - 1`` (the prior, as in ``robustness_curve``).

    Returns ``original``, ``drifted`` (float64 HU), ``outputs`` (name -> calibrated image), ``mae_roi_hu``
    (name -> ROI MAE in HU; key ``"drifted"`` for the drifted slice itself) and ``roi_mask``."""
    from ctstudio.metrics.robustness import drift_case

    a = np.asarray(volume_hu)
    if a.ndim != 3:
        raise InputError(f"the drift view needs a 3D volume, got shape {a.shape}")
    if not 1 <= k < a.shape[0]:
        raise InputError(f"slice {k} has no previous slice to calibrate against",
                         hint=f"choose a slice between 1 and {a.shape[0] - 1}")
    truth, prior = a[k].astype(np.float64), a[k - 1].astype(np.float64)
    outputs, maes = {}, {}
    case = None
    for name, cal in calibrators.items():
        case = drift_case(truth, prior, mu, cal, "icnet", roi)
        outputs[name] = case["calibrated"]
        maes[name] = case["mae_roi_hu"]
    if case is None:
        from ctstudio.metrics.robustness import shift_slice

        drifted = shift_slice(truth, mu, "icnet")
        mask = (truth >= roi.lower) & (truth <= roi.upper)
        maes["drifted"] = float(np.abs(drifted - truth)[mask].mean()) if mask.any() else float("nan")
    else:
        drifted, mask = case["shifted"], case["roi_mask"]
        maes["drifted"] = case["mae_shifted_roi_hu"]
    return {"original": truth, "drifted": drifted, "outputs": outputs, "mae_roi_hu": maes, "roi_mask": mask,
            "k": int(k), "mu": float(mu)}


def mu_sweep(volume_hu: np.ndarray, calibrators: dict[str, Callable], mus: Sequence[float] | None = None,
             slices: Sequence[int] | None = None, roi: HURange = ICNET_ROI,
             cancel=None) -> Generator[dict, None, dict]:
    """ROI MAE (HU) against mu, averaged over ``slices`` (default: every slice with one before it), for each
    calibrator and for the drifted slices themselves. Yields a ``mu`` event per mu (payload ``row``: that mu's
    figures, so a plot can grow); returns ``{"mus", "slices", "rows"}``, a row being
    ``{"mu", "drifted", <calibrator name>: ...}`` (means over the slices, ROI MAE in HU)."""
    from ctstudio.metrics.robustness import drift_case

    a = np.asarray(volume_hu)
    if a.ndim != 3 or a.shape[0] < 2:
        raise InputError(f"the mu sweep needs a 3D volume of at least 2 slices, got shape {a.shape}")
    check_ct_range(a, "the volume")
    mus = list(sweep_mus() if mus is None else mus)
    slices = list(range(1, a.shape[0]) if slices is None else slices)
    bad = [k for k in slices if not 1 <= k < a.shape[0]]
    if bad or not slices:
        raise InputError(f"slices {bad} have no previous slice in a volume of {a.shape[0]} slices",
                         hint=f"choose slice indices between 1 and {a.shape[0] - 1}")
    progress = Progress("mu-sweep", len(mus) * len(slices), "slice")
    rows = []
    done = 0
    for mu in mus:
        per: dict[str, list[float]] = {"drifted": [], **{name: [] for name in calibrators}}
        for k in slices:
            check_cancel(cancel, f"mu sweep cancelled after {len(rows)} of {len(mus)} mu values")
            truth, prior = a[k], a[k - 1]
            for name, cal in calibrators.items():
                case = drift_case(truth, prior, mu, cal, "icnet", roi)
                per[name].append(case["mae_roi_hu"])
            per["drifted"].append(case["mae_shifted_roi_hu"])
            done += 1
        row = {"mu": float(mu), **{key: float(np.nanmean(v)) for key, v in per.items()}}
        rows.append(row)
        yield progress.event("mu", done, row=row)
    return {"mus": [float(m) for m in mus], "slices": slices, "rows": rows}


def sweep_csv(sweep: dict, path) -> Path:
    """The sweep as CSV (``mu``, then one ROI-MAE column per curve, in HU), written atomically."""
    from io import StringIO

    from ctstudio.io.atomic import atomic_write_bytes

    rows = sweep["rows"]
    keys = [k for k in rows[0] if k != "mu"] if rows else []
    buf = StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["mu", *(f"{k}_roi_mae_hu" for k in keys)])
    for r in rows:
        w.writerow([f"{r['mu']:g}", *(f"{r[k]:.4f}" for k in keys)])
    out = Path(path)
    atomic_write_bytes(out, buf.getvalue().encode())
    return out
