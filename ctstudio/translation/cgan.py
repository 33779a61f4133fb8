"""3D cGAN tasks on CT blocks: autoencode, denoise (Poisson noise on the condition), depixelate
(2x nearest-neighbour down and up); normalisation recorded and inverted; augmentation; whole-volume
inference through :mod:`ctstudio.translation.blocks` (overlap + blending, no block seams).

Degradations and augmentation are numpy (HU in, HU out); only :class:`CGANModel` touches torch,
lazily, so importing this module stays light.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import FULL_12BIT, HURange, hu_to_model, model_to_hu
from ctstudio.volume import Volume

TASKS = ("autoencode", "denoise", "depixelate")


@dataclass(frozen=True)
class Degradation:
    """How the condition is made from a clean block. ``photons``: Poisson counts per 1000 HU above air
    (noise SD at water ~ 1000/sqrt(photons) HU); ``factor``: the depixelation factor."""

    task: str = "denoise"
    photons: float = 100.0
    factor: int = 2

    def __post_init__(self):
        if self.task not in TASKS:
            raise InputError(f"unknown cGAN task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.photons <= 0 or self.factor < 1:
            raise InputError("photons must be > 0 and factor >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def poisson_noise(hu: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise on the condition: counts ~ Poisson(photons * (HU + 1024) / 1000), back to HU."""
    lam = np.clip(np.asarray(hu, dtype=np.float64) + 1024.0, 0, None) * (photons / 1000.0)
    return (rng.poisson(lam) * (1000.0 / photons) - 1024.0).astype(np.float32)


def depixelate(hu: np.ndarray, factor: int = 2) -> np.ndarray:
    """Nearest-neighbour downsampling by ``factor`` on every axis, then nearest-neighbour upsampling back."""
    a = np.asarray(hu, dtype=np.float32)
    small = a[tuple(slice(None, None, factor) for _ in range(a.ndim))]
    up = small
    for ax in range(a.ndim):
        up = np.repeat(up, factor, axis=ax)
    return up[tuple(slice(0, s) for s in a.shape)]


def degrade(hu: np.ndarray, deg: Degradation, rng: np.random.Generator) -> np.ndarray:
    """The condition for ``deg.task`` from a clean HU array (float32 HU)."""
    if deg.task == "denoise":
        return poisson_noise(hu, deg.photons, rng)
    if deg.task == "depixelate":
        return depixelate(hu, deg.factor)
    return np.asarray(hu, dtype=np.float32).copy()


def augment(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random flips (each axis) and 90-degree in-plane rotation applied to every array."""
    flips = [ax for ax in range(3) if rng.random() < 0.5]
    k = int(rng.integers(0, 4))
    out = []
    for a in arrays:
        if flips:
            a = np.flip(a, axis=flips)
        a = np.rot90(a, k=k, axes=(1, 2))
        out.append(np.ascontiguousarray(a))
    return out


def random_block(volume_hu: np.ndarray, block: int, rng: np.random.Generator, min_fg: float = 0.1) -> np.ndarray:
    """A random ``block``³ crop (the random position is the shift augmentation), preferring blocks where
    at least ``min_fg`` of voxels are above -900 HU (not all air); tries a few times."""
    z, y, x = volume_hu.shape
    if min(z, y, x) < block:
        raise InputError(f"volume {volume_hu.shape} is smaller than a {block}³ block")
    for _ in range(10):
        k, j, i = (int(rng.integers(0, n - block + 1)) for n in (z, y, x))
        b = volume_hu[k:k + block, j:j + block, i:i + block]
        if (b > -900).mean() >= min_fg:
            break
    return np.asarray(b, dtype=np.float32)


class CGANModel:
    """A trained cGAN generator ready for inference (loaded from a ``kind="cgan"`` model file)."""

    def __init__(self, net, task: str, hu_range: HURange, block: int, name: str = "", version: str = "",
                 degradation: Degradation | None = None, device: str = "cpu"):
        self.net = net.eval()
        self.task = task
        self.hu_range = hu_range
        self.block = block
        self.name = name
        self.version = version
        self.degradation = degradation or Degradation(task=task)
        self.device = device
        self.meta: dict = {}

    @classmethod
    def load(cls, name_or_path, device: str = "cpu") -> "CGANModel":
        from ctstudio import checkpoints
        from ctstudio.models.unet3d import UNet3DGenerator

        meta, tensors = checkpoints.load_model(name_or_path, kind="cgan")
        with checkpoints.config_fields(meta, "cGAN") as cfg:
            net = UNet3DGenerator(base=int(cfg["g_base"]), depth=int(cfg["g_depth"]), residual=bool(cfg["residual"]))
            rng = HURange.from_dict(cfg["hu_range"])
            deg = Degradation(**cfg["degradation"])
            block = int(cfg["block"])
        checkpoints.load_modules(meta, tensors, {"G": net}, device)
        model = cls(net, deg.task, rng, block, meta["name"], str(meta.get("card", {}).get("version", "")), deg, device)
        model.meta = meta
        return model

    def run_blocks(self, batch_hu: np.ndarray) -> np.ndarray:
        """HU blocks (B, b, b, b) -> HU blocks: normalise, generator, invert the normalisation."""
        import torch

        x = torch.from_numpy(hu_to_model(batch_hu, self.hu_range)).unsqueeze(1).to(self.device)
        with torch.inference_mode():
            y = self.net(x)
        return model_to_hu(y.squeeze(1).float().cpu().numpy(), self.hu_range)

    def run_volume(self, hu: np.ndarray, overlap: int = 8, batch_size: int = 8, callback=None,
                   cancel=None) -> np.ndarray:
        """A whole HU array (z, y, x) through the model by overlapped, blended tiling -> float HU."""
        from ctstudio.translation.blocks import apply_blockwise

        return apply_blockwise(np.asarray(hu, np.float32), self.run_blocks, block=self.block, overlap=overlap,
                               batch_size=batch_size, callback=callback, cancel=cancel)

    def apply(self, volume: Volume, overlap: int = 8, batch_size: int = 8, callback=None, cancel=None) -> Volume:
        """Run the model over a whole volume (the input is the degraded/condition volume) -> Volume in HU."""
        from ctstudio.jobs import run_job

        return run_job(self.iter_apply(volume, overlap, batch_size, cancel), callback)

    def iter_apply(self, volume: Volume, overlap: int = 8, batch_size: int = 8, cancel=None):
        """:meth:`apply` as a job: yields an event per batch of blocks, returns the Volume."""
        from ctstudio.translation.blocks import iter_blockwise

        out = yield from iter_blockwise(np.asarray(volume.array, np.float32), self.run_blocks, block=self.block,
                                        overlap=overlap, batch_size=batch_size, cancel=cancel)
        prov = dataclasses.replace(
            volume.provenance, model=self.name, model_version=self.version,
            parameters={"task": self.task, "block": self.block, "overlap": overlap,
                        "hu_range": self.hu_range.to_dict()})
        prov = prov.with_step(f"cgan {self.task} ({self.name}), {self.block}³ blocks, overlap {overlap}")
        return Volume.from_hu(np.clip(out, self.hu_range.lower, self.hu_range.upper), spacing=volume.spacing,
                              origin=volume.origin, direction=volume.direction, metadata=volume.metadata,
                              provenance=prov)


DEFAULT_RANGE = FULL_12BIT
