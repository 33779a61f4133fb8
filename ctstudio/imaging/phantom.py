"""A procedural 3D head phantom in HU, for unit tests and benchmarks.

Air outside, a soft-tissue scalp, a bone skull shell, brain with grey matter (cortex ribbon) and
white matter, and two lateral ventricles whose size and separation change along z (so that
"adjacent-slice" behaviour is testable). Deterministic; optional Gaussian noise with a seed.
The exact tissue values are module constants so tests can check known voxels.
"""

from __future__ import annotations

import numpy as np

from ctstudio.volume import Metadata, Provenance, Volume

AIR = -1000
SCALP = 30
BONE = 1200
GREY = 40
WHITE = 25
CSF = 5


def head_phantom_hu(shape: tuple[int, int, int] = (48, 128, 128), noise_sd: float = 0.0, seed: int = 0) -> np.ndarray:
    """The phantom as an int16 HU array ``[z, y, x]``."""
    nz, ny, nx = shape
    z = np.linspace(-1.0, 1.0, nz, dtype=np.float32)[:, None, None]
    y = np.linspace(-1.0, 1.0, ny, dtype=np.float32)[None, :, None]
    x = np.linspace(-1.0, 1.0, nx, dtype=np.float32)[None, None, :]
    # Head: an ellipsoid a bit longer front-to-back (y) than side-to-side (x), cut off in z.
    r_head = (x / 0.80) ** 2 + (y / 0.92) ** 2 + (z / 1.15) ** 2
    r_skull_out = (x / 0.74) ** 2 + (y / 0.86) ** 2 + (z / 1.08) ** 2
    r_brain = (x / 0.68) ** 2 + (y / 0.80) ** 2 + (z / 1.01) ** 2
    r_white = (x / 0.56) ** 2 + (y / 0.68) ** 2 + (z / 0.90) ** 2
    hu = np.full(shape, AIR, dtype=np.float32)
    hu[r_head <= 1] = SCALP
    hu[r_skull_out <= 1] = BONE
    hu[r_brain <= 1] = GREY
    hu[r_white <= 1] = WHITE
    # Lateral ventricles: two ellipsoids whose half-width and separation vary with z.
    zz = np.broadcast_to(z, shape)
    sep = 0.10 + 0.06 * np.cos(np.pi * zz)
    half_w = 0.05 + 0.05 * np.clip(1 - np.abs(zz) / 0.6, 0, 1)
    half_l = 0.30 * np.clip(1 - (zz / 0.55) ** 2, 0, 1) + 1e-3
    for side in (-1, 1):
        r_v = ((x - side * sep) / half_w) ** 2 + ((y + 0.05) / half_l) ** 2
        hu[(r_v <= 1) & (np.abs(zz) < 0.55)] = CSF
    if noise_sd > 0:
        rng = np.random.default_rng(seed)
        hu += rng.normal(0.0, noise_sd, size=shape).astype(np.float32)
    return np.rint(hu).astype(np.int16)


def head_phantom(
    shape: tuple[int, int, int] = (48, 128, 128),
    spacing: tuple[float, float, float] = (1.5, 1.5, 3.0),
    noise_sd: float = 0.0,
    seed: int = 0,
) -> Volume:
    """The phantom as a :class:`Volume` (spacing in x, y, z mm; identity direction)."""
    arr = head_phantom_hu(shape, noise_sd=noise_sd, seed=seed)
    nz, ny, nx = shape
    origin = (-(nx - 1) * spacing[0] / 2, -(ny - 1) * spacing[1] / 2, 0.0)
    return Volume(
        arr,
        spacing=spacing,
        origin=origin,
        metadata=Metadata(modality="CT", series_description="ctstudio head phantom", kernel="phantom"),
        provenance=Provenance(
            parameters={"generator": "ctstudio.imaging.phantom.head_phantom", "shape": list(shape),
                        "noise_sd": noise_sd, "seed": seed},
            steps=("procedural head phantom",),
        ),
    )
