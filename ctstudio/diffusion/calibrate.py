"""Intensity calibration of generated slices: IC-Net, and histogram matching as the baseline.

Both work in HU and only touch the IC-Net ROI ([-150, 150] HU by default): pixels outside it (air,
bone, fat) are returned as they were. The metrics code calls ``calibrator(generated_hu, prior_hu)``.
"""

from __future__ import annotations

import numpy as np

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import ICNET_ROI, HURange, hu_to_model, model_to_hu
from ctstudio.volume import Volume


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise InputError(f"calibration needs two 2D slices of one shape, got {a.shape} and {b.shape}")


class ICNetCalibrator:
    """``calibrator(generated_hu_slice, prior_hu_slice) -> calibrated_hu_slice`` (float32 HU)."""

    def __init__(self, net, roi: HURange = ICNET_ROI, name: str = "icnet", device="cpu"):
        self.net = net
        self.roi = roi
        self.name = name
        self.device = device

    @classmethod
    def from_checkpoint(cls, name_or_path=None, device="cpu") -> "ICNetCalibrator":
        from ctstudio.diffusion.loading import DEFAULT_ICNET, load_icnet

        net, meta = load_icnet(name_or_path or DEFAULT_ICNET, device=device)
        return cls(net, meta["roi"], meta["name"], device)

    def __call__(self, generated_hu: np.ndarray, prior_hu: np.ndarray) -> np.ndarray:
        import torch

        g = np.asarray(generated_hu, np.float32)
        p = np.asarray(prior_hu, np.float32)
        _check_pair(g, p)
        m = self.net.multiple
        h, w = g.shape
        ph, pw = (-h) % m, (-w) % m
        gi = np.pad(hu_to_model(g, self.roi), ((0, ph), (0, pw)), mode="edge")
        pi = np.pad(hu_to_model(p, self.roi), ((0, ph), (0, pw)), mode="edge")
        with torch.no_grad():
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None, None].to(self.device)  # noqa: E731
            out = self.net(t(gi), t(pi))[0, 0, :h, :w].float().cpu().numpy()
        cal = model_to_hu(out, self.roi)
        inside = (g > self.roi.lower) & (g < self.roi.upper)
        return np.where(inside, cal, g).astype(np.float32)


def histogram_match(generated_hu: np.ndarray, prior_hu: np.ndarray, roi: HURange = ICNET_ROI) -> np.ndarray:
    """Baseline: match the ROI pixels' histogram of the generated slice to the prior slice's (scikit-image)."""
    from skimage.exposure import match_histograms

    g = np.asarray(generated_hu, np.float32)
    p = np.asarray(prior_hu, np.float32)
    _check_pair(g, p)
    gi = (g > roi.lower) & (g < roi.upper)
    pi = (p > roi.lower) & (p < roi.upper)
    if gi.sum() < 16 or pi.sum() < 16:
        return g.copy()
    out = g.copy()
    out[gi] = match_histograms(g[gi], p[pi])
    return out


def calibrate_volume(volume: Volume, calibrator, direction: str = "inferior", label: str | None = None,
                     callback=None, cancel=None) -> Volume:
    """:func:`iter_calibrate` run to its end; ``callback`` receives each event."""
    from ctstudio.jobs import run_job

    return run_job(iter_calibrate(volume, calibrator, direction, label, cancel), callback)


def iter_calibrate(volume: Volume, calibrator, direction: str = "inferior", label: str | None = None, cancel=None):
    """Calibrate every slice against the (calibrated) slice before it, in the generation direction, as a job.

    The first slice in that direction is the anchor and stays as it is. ``calibrator`` is an
    :class:`ICNetCalibrator` or :func:`histogram_match`. Yields a ``slice`` event per slice (payload
    ``index``: the array index just calibrated), returns the calibrated Volume.
    """
    from ctstudio.imaging.slices import inferior_step
    from ctstudio.jobs import Progress, check_cancel

    if direction not in ("inferior", "superior"):
        raise InputError(f"direction must be 'inferior' or 'superior', not {direction!r}")
    a = volume.array.astype(np.float32)
    n = a.shape[0]
    step = inferior_step(volume) if direction == "inferior" else -inferior_step(volume)
    order = list(range(n)) if step > 0 else list(range(n - 1, -1, -1))
    out = a.copy()
    progress = Progress("calibrate", n, "slice")
    yield progress.event("slice", 1, index=order[0], anchor=True)
    for done, (prev, cur) in enumerate(zip(order[:-1], order[1:]), start=2):
        check_cancel(cancel, f"calibration cancelled after {done - 1} of {n} slices")
        out[cur] = calibrator(a[cur], out[prev])
        yield progress.event("slice", done, index=cur)
    name = label or getattr(calibrator, "name", getattr(calibrator, "__name__", "calibration"))
    arr = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
    return volume.with_array(arr, step=f"intensity calibration ({name}), {direction}, anchor slice {order[0]}")
