"""CT display windows: one window function and the named presets.

A window maps HU ``[lower, upper]`` linearly onto display grey levels; values outside are
saturated. ``level``/``width`` and ``lower``/``upper`` are two views of the same thing:
``lower = level - width / 2``, ``upper = level + width / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctstudio.errors import InputError


@dataclass(frozen=True)
class Window:
    level: float
    width: float
    name: str = ""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.level) and np.isfinite(self.width)) or self.width <= 0:
            raise InputError(f"a window needs a finite level and a positive width, got L{self.level}/W{self.width}")

    @classmethod
    def from_range(cls, lower: float, upper: float, name: str = "") -> "Window":
        if not upper > lower:
            raise InputError(f"a window's upper bound must exceed its lower bound, got [{lower}, {upper}]")
        return cls(level=(lower + upper) / 2.0, width=float(upper - lower), name=name)

    @property
    def lower(self) -> float:
        return self.level - self.width / 2.0

    @property
    def upper(self) -> float:
        return self.level + self.width / 2.0

    def __str__(self) -> str:
        label = f"{self.name} " if self.name else ""
        return f"{label}L{self.level:g}/W{self.width:g}"


#: Named presets (level/width in HU). Order is the order of the number keys in the viewer.
PRESETS: dict[str, Window] = {
    w.name: w
    for w in (
        Window(40, 80, "brain"),
        Window.from_range(-10, 70, "ascii-brain"),
        Window(75, 215, "subdural"),
        Window(32, 8, "stroke"),
        Window(480, 2500, "bone"),
        Window(-600, 1500, "lung"),
        Window(50, 350, "mediastinum"),
        Window(40, 400, "soft-tissue"),
        Window(90, 150, "liver"),
        Window.from_range(-1024, 3071, "12-bit"),
        Window.from_range(-150, 150, "icnet-roi"),
    )
}


def preset(name: str) -> Window:
    """The named preset; a clear error lists the names when it is unknown."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    try:
        return PRESETS[key]
    except KeyError:
        raise InputError(f"unknown window preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def apply_window(hu: np.ndarray, window: Window, out_dtype: type = np.uint8) -> np.ndarray:
    """The one window function: HU -> grey levels.

    ``out_dtype=np.uint8`` gives 0..255 (lower -> 0, upper -> 255, rounded); a float dtype gives
    0..1. Values outside the window saturate.
    """
    lo, width = window.lower, window.width
    x = (np.asarray(hu, dtype=np.float32) - np.float32(lo)) * np.float32(1.0 / width)
    np.clip(x, 0.0, 1.0, out=x)
    if np.dtype(out_dtype) == np.uint8:
        return np.rint(x * 255.0).astype(np.uint8)
    return x.astype(out_dtype, copy=False)
