"""Tiny study folders for tests and benchmarks: phantom volumes (and 2D images) plus a spec.

The "synthetic" cases here are phantoms with another noise seed: nothing in them is model output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_phantom_study(folder: str | Path, kind: str = "pair", n_real: int = 3, n_synthetic: int = 3,
                        shape=(12, 48, 48), trials: int = 10, seed: int = 7, mode: str = "axial",
                        extra: str = "", size: int = 64, name: str | None = None, min_view_ms: int = 0,
                        allow_repeats: bool = False) -> Path:
    """Write ``real/``, ``synthetic/`` NIfTI phantoms and ``study.toml``; returns the spec path.

    ``min_view_ms`` defaults to 0 here so scripted tests answer at once; tests of the minimum
    viewing time set it."""
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume

    folder = Path(folder)
    (folder / "real").mkdir(parents=True, exist_ok=True)
    (folder / "synthetic").mkdir(parents=True, exist_ok=True)
    for i in range(n_real):
        write_volume(head_phantom(shape, noise_sd=10.0, seed=i), folder / "real" / f"case{i:02d}.nii.gz")
    for i in range(n_synthetic):
        write_volume(head_phantom(shape, noise_sd=10.0, seed=100 + i), folder / "synthetic" / f"case{i:02d}.nii.gz")
    count = "pairs_per_reader" if kind == "pair" else "cases_per_reader"
    spec = folder / "study.toml"
    spec.write_text(f"""
[study]
name = "{name or f'phantom-{kind}'}"
kind = "{kind}"
seed = {seed}
{count} = {trials}
min_view_ms = {min_view_ms}
allow_repeats = {"true" if allow_repeats else "false"}

[pools]
real = ["real/*.nii.gz"]
synthetic = ["synthetic/*.nii.gz"]

[display]
mode = "{mode}"
window = "brain"
size = {size}
depth = 8
{extra}
""")
    return spec


def write_png(path: str | Path, shape=(40, 60), seed: int = 0, bits: int = 8) -> Path:
    """A grey-value PNG (a stand-in for a mammogram-style 2D case)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img = 100 + 80 * np.exp(-((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2) / (shape[0] * 4.0))
    img = img + rng.normal(0, 5, shape)
    if bits == 8:
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    else:
        Image.fromarray(np.clip(img * 100, 0, 65535).astype(np.uint16)).save(path)
    return Path(path)
