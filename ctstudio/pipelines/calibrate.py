"""The calibrate job: IC-Net (or the histogram-matching baseline) over a whole volume, slice by slice.

Each slice is calibrated against the calibrated slice before it, in the generation (inferior) direction;
the first slice is the anchor. Yields a ``slice`` event per slice; returns the calibrated Volume.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from ctstudio.errors import InputError
from ctstudio.jobs import Progress
from ctstudio.pipelines.models import DEFAULTS, load_model
from ctstudio.volume import Volume

METHODS = ("icnet", "histogram")


@dataclass(frozen=True)
class CalibrateRequest:
    volume: Volume = field(compare=False)
    method: str = "icnet"
    model: str | None = None  # IC-Net name or path (icnet); None: the bundled demo
    device: str | None = "auto"


def calibrate(req: CalibrateRequest, cancel=None) -> Generator[dict, None, Volume]:
    from ctstudio.diffusion.calibrate import histogram_match, iter_calibrate

    if req.method not in METHODS:
        raise InputError(f"unknown calibration method {req.method!r}; choose one of {', '.join(METHODS)}")
    if req.method == "icnet":
        yield Progress("calibrate", req.volume.shape[0], "slice").event("load", 0, model=req.model or DEFAULTS["icnet"])
        calibrator = load_model(req.model or DEFAULTS["icnet"], kind="icnet", device=req.device).runner
        label = None
    else:
        calibrator, label = histogram_match, "histogram matching"
    return (yield from iter_calibrate(req.volume, calibrator, label=label, cancel=cancel))
