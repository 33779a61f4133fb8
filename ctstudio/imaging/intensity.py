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
