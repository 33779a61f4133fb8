"""The demo study: the templates in ``resources/studies/`` plus case files made from the bundled sample.

HONEST LABEL: ctstudio bundles no generative model yet, so the demo's "synthetic" pool is **not
model output**. :func:`make_demo` writes

* ``cases/real/headsq_real_{0..3}.nii.gz``: four overlapping 40-slice crops of the bundled real
  volume ``resources/sample/headsq_hu.nii.gz`` (approximate HU, unchanged voxels);
* ``cases/synthetic/headsq_degraded_{0..3}.nii.gz``: the same crops blurred (Gaussian, sigma 0.8
  voxel) with Gaussian noise (SD 25 HU) added, fixed seeds, provenance saying so.

The degradation stands in for a generator so the screens, store and analysis can be tried; the
audit reports the difference it introduces. File names are neutral in the study (the store hands
readers opaque tokens), but these demo names say what they are, on purpose.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ctstudio.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "resources" / "studies"
SAMPLE = ROOT / "resources" / "sample" / "headsq_hu.nii.gz"
CROP = 40
STARTS = (0, 17, 34, 51)


def degrade(hu: np.ndarray, seed: int, sigma: float = 0.8, noise_sd: float = 25.0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    out = gaussian_filter(hu.astype(np.float32), sigma) + rng.normal(0.0, noise_sd, hu.shape).astype(np.float32)
    return np.clip(np.rint(out), -1024, 3071).astype(np.int16)


def make_demo(out_dir: str | Path, sample: str | Path = SAMPLE, overwrite: bool = False) -> list[Path]:
    """Write the demo templates and cases into ``out_dir``; returns the spec paths."""
    from ctstudio.io import read_volume, write_volume
    from ctstudio.volume import Provenance

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError("the demo folder is not empty", path=out, hint="choose a new folder or pass --overwrite")
    vol = read_volume(sample)
    (out / "cases" / "real").mkdir(parents=True, exist_ok=True)
    (out / "cases" / "synthetic").mkdir(parents=True, exist_ok=True)
    for i, z0 in enumerate(STARTS):
        crop = vol.array[z0:z0 + CROP].copy()
        origin = vol.index_to_lps(z0, 0, 0)
        real = vol.replace(array=crop, origin=tuple(origin),
                           provenance=vol.provenance.with_step(f"demo: crop z {z0}..{z0 + CROP - 1}"))
        write_volume(real, out / "cases" / "real" / f"headsq_real_{i}.nii.gz")
        fake = real.replace(array=degrade(crop, seed=1000 + i),
                            provenance=Provenance(source_files=real.provenance.source_files,
                                                  steps=real.provenance.steps + (
                                                      "demo: NOT model output; gaussian blur sigma 0.8 voxel + "
                                                      f"gaussian noise SD 25 HU, seed {1000 + i}",)))
        write_volume(fake, out / "cases" / "synthetic" / f"headsq_degraded_{i}.nii.gz")
    specs = []
    for t in sorted(TEMPLATES.glob("*.toml")):
        dst = out / t.name
        shutil.copyfile(t, dst)
        specs.append(dst)
    return specs
