"""IC-Net robustness to intensity shifts (the ASCII paper's Fig. 5).

For chosen real slices k (default 7, 14, 21, 28), the slice is shifted by a fixed factor mu
(0.7 to 1.3 in steps of 0.1), calibrated with its previous real slice k - 1 as the prior, and the
mean absolute error in HU against the unshifted slice is reported per mu.

The default shift (``mode="icnet"``) is IC-Net's own training drift,
``x' = (x - mean(x)) * mu + mean(x)`` in [-1, 1] of the ROI window [-150, 150] HU, pixels outside the
ROI unchanged (:func:`ctstudio.imaging.intensity.intensity_drift_hu`, the one definition shared with
IC-Net training): the drift the calibrator is meant to undo. ``mode="model"`` instead scales the
whole 12-bit model range (x' = mu * x; brain tissue then moves ~100 HU per 0.1 of mu and leaves the
ROI), and ``mode="hu"`` the HU values themselves. MAE is given over the whole slice and within the
IC-Net ROI ([-150, 150] HU of the true slice), before and after calibration.

It works with any calibrator, a callable ``calibrate(generated_hu_slice, prior_hu_slice) ->
calibrated_hu_slice`` (float HU arrays of one 2D shape): an IC-Net checkpoint wrapped by
:func:`icnet_calibrator`, or :func:`histogram_matching` as a model-free baseline.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ctstudio.errors import InputError, ModelError
from ctstudio.imaging.intensity import FULL_12BIT, ICNET_ROI, HURange, hu_to_model, intensity_drift_hu, model_to_hu

Calibrator = Callable[[np.ndarray, np.ndarray], np.ndarray]
DEFAULT_SLICES = (7, 14, 21, 28)
DEFAULT_MUS = tuple(round(0.7 + 0.1 * i, 1) for i in range(7))


SHIFT_MODES = ("icnet", "model", "hu")


def shift_slice(hu: np.ndarray, mu: float, mode: str = "icnet", rng: HURange = FULL_12BIT) -> np.ndarray:
    """The slice with its intensity shifted by ``mu`` (see the module doc), as float HU."""
    a = np.asarray(hu, dtype=np.float64)
    if mode in SHIFT_MODES and float(mu) == 1.0:
        return a.copy()  # no drift: the slice itself, without a float32 round trip through the model range
    if mode == "icnet":
        return np.asarray(intensity_drift_hu(a, mu, ICNET_ROI), dtype=np.float64)
    if mode == "model":
        return np.asarray(model_to_hu(hu_to_model(a, rng, clip=True) * mu, rng, clip=True), dtype=np.float64)
    if mode == "hu":
        return a * mu
    raise InputError(f"unknown shift mode {mode!r}; choose one of {', '.join(SHIFT_MODES)}")


def histogram_matching(generated: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Model-free calibrator: the ROI histogram of the generated slice matched to the prior's
    (:func:`ctstudio.diffusion.calibrate.histogram_match`, the same baseline the Calibrate command uses)."""
    from ctstudio.diffusion.calibrate import histogram_match

    return np.asarray(histogram_match(generated, prior), dtype=np.float64)


def icnet_calibrator(checkpoint=None) -> tuple[Calibrator, str]:
    """An IC-Net checkpoint (a model name or path; the bundled one when None) as a calibrator, and a
    label for the report. Uses ``ctstudio.diffusion.calibrate.ICNetCalibrator.from_checkpoint``
    (the generation issue's loader); a :class:`ModelError` says what is missing otherwise.
    """
    try:
        from ctstudio.diffusion.calibrate import ICNetCalibrator
    except ImportError as exc:
        raise ModelError(f"IC-Net is not available in this build ({exc})",
                         hint="use --calibrator histogram") from None
    cal = ICNetCalibrator.from_checkpoint(checkpoint)
    name = getattr(cal, "name", None) or str(checkpoint or "bundled")
    return cal, f"IC-Net ({name})"


def drift_case(truth: np.ndarray, prior: np.ndarray, mu: float, calibrate: Calibrator, mode: str = "icnet",
               roi: HURange = ICNET_ROI) -> dict:
    """One slice of the robustness measurement: ``truth`` shifted by ``mu``, calibrated against ``prior``.

    Returns the images (float64 HU: ``shifted``, ``calibrated``; ``roi_mask``: the pixels of ``truth`` in
    ``[roi.lower, roi.upper]``) and the errors against ``truth`` in HU: ``mae_hu`` / ``mae_roi_hu`` after
    calibration, ``mae_shifted_hu`` / ``mae_shifted_roi_hu`` before it (NaN for an ROI with no pixel).
    :func:`robustness_curve` averages these; the Calibrate tab shows one of them live.
    """
    truth = np.asarray(truth, dtype=np.float64)
    shifted = shift_slice(truth, mu, mode)
    out = np.asarray(calibrate(shifted, np.asarray(prior, dtype=np.float64)), dtype=np.float64)
    if out.shape != truth.shape:
        raise ModelError(f"the calibrator returned shape {out.shape} for a {truth.shape} slice")
    roi_mask = (truth >= roi.lower) & (truth <= roi.upper)
    err, err0 = np.abs(out - truth), np.abs(shifted - truth)
    nan = float("nan")
    return {"shifted": shifted, "calibrated": out, "roi_mask": roi_mask,
            "mae_hu": float(err.mean()), "mae_shifted_hu": float(err0.mean()),
            "mae_roi_hu": float(err[roi_mask].mean()) if roi_mask.any() else nan,
            "mae_shifted_roi_hu": float(err0[roi_mask].mean()) if roi_mask.any() else nan}


def robustness_curve(
    volume_hu: np.ndarray,
    calibrate: Calibrator,
    slices: Sequence[int] = DEFAULT_SLICES,
    mus: Sequence[float] = DEFAULT_MUS,
    mode: str = "icnet",
    roi: HURange = ICNET_ROI,
    callback: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict:
    """MAE (HU) per mu, averaged over ``slices`` of one real HU volume [z, y, x]."""
    from ctstudio.errors import Cancelled

    a = np.asarray(volume_hu, dtype=np.float64)
    if a.ndim != 3:
        raise InputError(f"IC-Net robustness needs a 3D volume, got shape {a.shape}")
    bad = [k for k in slices if not 1 <= k < a.shape[0]]
    if bad:
        raise InputError(f"slices {bad} have no previous slice in a volume of {a.shape[0]} slices",
                         hint=f"choose slice indices between 1 and {a.shape[0] - 1} (--icnet-slices)")
    rows = []
    total = len(mus) * len(slices)
    done = 0
    for mu in mus:
        per = {"mu": float(mu), "mae_hu": [], "mae_roi_hu": [], "mae_shifted_hu": [], "mae_shifted_roi_hu": []}
        for k in slices:
            if cancel is not None and cancel():
                raise Cancelled("IC-Net robustness was cancelled")
            case = drift_case(a[k], a[k - 1], mu, calibrate, mode, roi)
            for key in ("mae_hu", "mae_shifted_hu", "mae_roi_hu", "mae_shifted_roi_hu"):
                per[key].append(case[key])
            done += 1
            if callback is not None:
                callback({"stage": "icnet-robustness", "done": done, "total": total})
        rows.append({k: (float(np.nanmean(v)) if isinstance(v, list) else v) for k, v in per.items()}
                    | {"per_slice_mae_hu": per["mae_hu"]})
    return {"slices": list(slices), "mus": [float(m) for m in mus], "mode": mode,
            "roi_hu": [roi.lower, roi.upper], "curve": rows}
