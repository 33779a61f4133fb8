"""HU <-> model range: the one place where HU becomes ``[-1, 1]`` and back.

Models see ``[-1, 1]`` of a chosen HU range (the whole 12-bit range, the ASCII brain window,
the IC-Net ROI); everything outside the core sees HU. The functions work on numpy arrays and
on torch tensors alike (only arithmetic and ``.clip`` are used), so this module never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctstudio.errors import InputError


@dataclass(frozen=True)
class HURange:
    lower: float
    upper: float
    name: str = ""

    def __post_init__(self) -> None:
        if not self.upper > self.lower:
            raise InputError(f"an HU range needs upper > lower, got [{self.lower}, {self.upper}]")

    @property
    def width(self) -> float:
        return float(self.upper - self.lower)

    def to_dict(self) -> dict:
        return {"lower": self.lower, "upper": self.upper, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "HURange":
        return cls(float(d["lower"]), float(d["upper"]), str(d.get("name", "")))


#: The whole 12-bit CT range (the ASCII paper's main setting).
FULL_12BIT = HURange(-1024, 3071, "12-bit")
#: The ASCII paper's windowed experiment.
ASCII_BRAIN = HURange(-10, 70, "ascii-brain")
#: IC-Net's region of interest.
ICNET_ROI = HURange(-150, 150, "icnet-roi")

RANGES = {r.name: r for r in (FULL_12BIT, ASCII_BRAIN, ICNET_ROI)}


def hu_to_model(hu, rng: HURange = FULL_12BIT, clip: bool = True):
    """HU -> ``[-1, 1]`` of ``rng`` (float32 for numpy input). Values outside are clipped unless ``clip=False``."""
    if isinstance(hu, np.ndarray) or np.isscalar(hu):
        hu = np.asarray(hu, dtype=np.float32)
    x = (hu - rng.lower) * (2.0 / rng.width) - 1.0
    return x.clip(-1.0, 1.0) if clip else x


def model_to_hu(x, rng: HURange = FULL_12BIT, clip: bool = True):
    """``[-1, 1]`` of ``rng`` -> HU (float). Clipped to ``rng`` unless ``clip=False``."""
    if clip:
        x = x.clip(-1.0, 1.0)
    return (x + 1.0) * (rng.width / 2.0) + rng.lower


def model_to_hu_int16(x: np.ndarray, rng: HURange = FULL_12BIT) -> np.ndarray:
    """``[-1, 1]`` -> int16 HU, rounded (the form a :class:`~ctstudio.volume.Volume` holds)."""
    return np.rint(model_to_hu(np.asarray(x, dtype=np.float32), rng)).astype(np.int16)


def intensity_drift(x, mu):
    """IC-Net's intensity drift ``(x - mean(x)) * mu + mean(x)`` per slice, clipped to ``[-1, 1]``.

    ``x`` is (N, H, W) (or (H, W)) in the model range of a window, ``mu`` a scalar or one per slice.
    This is the self-supervised corruption IC-Net is trained to undo (ASCII paper), and the shift
    the robustness metric applies (its Fig. 5): one definition for both.
    """
    x = np.asarray(x, np.float32)
    squeeze = x.ndim == 2
    if squeeze:
        x = x[None]
    shape = (-1,) + (1,) * (x.ndim - 1)
    mu = np.broadcast_to(np.asarray(mu, np.float32).reshape(-1), (len(x),)).reshape(shape)
    mean = x.reshape(len(x), -1).mean(1).reshape(shape)
    out = ((x - mean) * mu + mean).clip(-1.0, 1.0).astype(np.float32)
    return out[0] if squeeze else out


def intensity_drift_hu(x_hu, mu: float, roi: HURange = ICNET_ROI):
    """The same drift on an HU slice, applied in the ROI window; pixels outside the ROI keep their HU."""
    x_hu = np.asarray(x_hu, np.float32)
    shifted = model_to_hu(intensity_drift(hu_to_model(x_hu, roi), mu), roi)
    inside = (x_hu > roi.lower) & (x_hu < roi.upper)
    return np.where(inside, shifted, x_hu).astype(np.float32)
