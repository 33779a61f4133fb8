"""Training recipe ``cgan``: a 3D conditional GAN (pix2pix in 3D) on 32³ CT blocks.

Tasks (``task``): ``autoencode`` (condition = the block), ``denoise`` (Poisson noise on the condition),
``depixelate`` (2x nearest-neighbour down and up). The generator maps condition -> clean block; the
conditional 3D PatchGAN critic sees (condition, block) pairs; L1 to the clean block keeps it faithful.
HU are normalised to [-1, 1] of ``[hu_lower, hu_upper]`` (recorded in the model file and inverted at
inference). Augmentation: random flips on each axis, 90-degree in-plane rotations, random block
positions (shifts).

Data: ``--data DIR`` (a folder of volumes, or one volume file). The last ``holdout`` slices of every
volume (after a ``gap``) are never trained on; :meth:`CGANRecipe.evaluate` degrades them with a fixed
seed and reports PSNR/SSIM of the model output and of the degraded input (the baseline) vs the clean CT,
inferring the whole held-back slab by overlapped, blended tiling.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ctstudio.errors import ConfigError, InputError
from ctstudio.imaging.intensity import HURange, hu_to_model
from ctstudio.io import VOLUME_SUFFIXES
from ctstudio.metrics.ssim import psnr, ssim
from ctstudio.models.unet3d import PatchCritic3D, UNet3DGenerator
from ctstudio.training.trainer import Recipe
from ctstudio.translation import cgan
from ctstudio.translation.ggcl import gradient_penalty



@dataclass(frozen=True)
class CGANConfig:
    task: str = "denoise"
    photons: float = 100.0
    factor: int = 2
    block: int = 32
    g_base: int = 32
    g_depth: int = 3
    residual: bool = True
    d_base: int = 32
    d_layers: int = 3
    adversarial: str = "lsgan"  # or "wgan-gp"
    lambda_l1: float = 100.0
    lambda_gp: float = 10.0
    n_critic: int = 1
    batch_size: int = 4
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    holdout: int = 24
    gap: int = 2
    min_foreground: float = 0.1
    hu_lower: float = -1024.0
    hu_upper: float = 3071.0
    eval_overlap: int = 8
    eval_crop: int = 0  # 0: whole held-back slab; else a central crop of this size in y and x
    steps: int = 100000
    checkpoint_every: int = 1000

    def __post_init__(self):
        if self.task not in cgan.TASKS:
            raise ConfigError(f"task must be one of {', '.join(cgan.TASKS)}, got {self.task!r}")
        if self.adversarial not in ("lsgan", "wgan-gp"):
            raise ConfigError("adversarial must be 'lsgan' or 'wgan-gp'")
        if self.block % (2 ** self.g_depth):
            raise ConfigError(f"block {self.block} must be a multiple of 2**g_depth")

    @property
    def hu_range(self) -> HURange:
        return HURange(self.hu_lower, self.hu_upper, "")

    @property
    def degradation(self) -> cgan.Degradation:
        return cgan.Degradation(self.task, self.photons, self.factor)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hu_range"] = self.hu_range.to_dict()
        d["degradation"] = self.degradation.to_dict()
        return d

    @classmethod
    def paper(cls) -> "CGANConfig":
        return cls()

    @classmethod
    def tiny(cls) -> "CGANConfig":
        return cls(block=16, g_base=4, g_depth=2, d_base=4, d_layers=2, batch_size=2, holdout=16, gap=0,
                   eval_crop=32, steps=4, checkpoint_every=2)

    @classmethod
    def demo(cls) -> "CGANConfig":
        """The bundled demo: denoising the Philips chest CT (last 24 of 64 slices held back)."""
        return cls(g_base=8, d_base=8, batch_size=2, steps=1500, checkpoint_every=250, eval_crop=256)


class CGANRecipe(Recipe):
    kind = "cgan"
    ema_modules = ("G",)
    ema_decay = 0.999
    export_modules = ("G",)
    preview_window = "mediastinum"

    def __init__(self, config: CGANConfig, data_dir: Path | None = None):
        c = config
        self.config = c
        self.name = "cgan-model"
        self.data_dir = data_dir
        with torch.random.fork_rng():  # the same initial weights whatever the caller's RNG state
            torch.manual_seed(0)
            self.G = UNet3DGenerator(base=c.g_base, depth=c.g_depth, residual=c.residual)
            self.D = PatchCritic3D(base=c.d_base, n_layers=c.d_layers)
        self.modules = {"G": self.G, "D": self.D}
        self.optimizers = {
            "G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)),
            "D": torch.optim.Adam(self.D.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)),
        }
        self.device = torch.device("cpu")
        #: a preview (degraded | restored | clean) with every checkpoint
        self.preview_every = c.checkpoint_every
        self._volumes: list[np.ndarray] | None = None
        self._sources: list[str] = []

    # -- data ------------------------------------------------------------------------------
    def load_data(self, data_dir=None) -> list[np.ndarray]:
        if self._volumes is not None:
            return self._volumes
        from ctstudio.io import read_volume

        d = Path(data_dir or self.data_dir or "")
        if not str(d) or not d.exists():
            raise InputError("cGAN training needs --data DIR (a folder of CT volumes or one volume)", path=d)
        paths = [d] if d.is_file() else sorted(p for p in d.iterdir()
                                               if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES))
        if not paths:
            raise InputError("no NIfTI / MHA / NRRD volume in the data folder", path=d)
        from ctstudio.training.datasets import describe_volume

        c = self.config
        vols, files = [], []
        for p in paths:
            v = read_volume(p)
            a = v.array
            if a.shape[0] - c.holdout - c.gap < c.block or min(a.shape[1:]) < c.block:
                continue
            vols.append(a)
            files.append(describe_volume(p, v))
            self._sources.append(p.name)
        self.data_files = files
        if not vols:
            raise InputError(f"no volume is large enough for {c.block}³ blocks with {c.holdout} held-back slices",
                             path=d)
        self._volumes = vols
        self.data_dir = d
        return vols

    def make_batches(self, data_dir, rng: np.random.Generator):
        c = self.config
        vols = self.load_data(data_dir)
        deg = c.degradation
        while True:
            conds, targets = [], []
            for _ in range(self.global_batch_size()):
                v = vols[int(rng.integers(0, len(vols)))]
                train = v[: v.shape[0] - c.holdout - c.gap]
                clean = cgan.random_block(train, c.block, rng, c.min_foreground)
                clean, = cgan.augment([clean], rng)
                cond = cgan.degrade(clean, deg, rng)
                conds.append(hu_to_model(cond, c.hu_range))
                targets.append(hu_to_model(clean, c.hu_range))
            yield {"cond": torch.from_numpy(np.stack(conds)[:, None]),
                   "target": torch.from_numpy(np.stack(targets)[:, None])}

    # -- one step ---------------------------------------------------------------------------
    def train_step(self, batch, step: int, nets: dict | None = None) -> dict[str, float]:
        G, D = ((nets or self.modules)[k] for k in ("G", "D"))
        c = self.config
        cond, target = batch["cond"].to(self.device), batch["target"].to(self.device)
        out: dict[str, float] = {}
        for _ in range(c.n_critic):
            with torch.no_grad():
                fake = G(cond)
            real_s, fake_s = D(cond, target), D(cond, fake)
            if c.adversarial == "lsgan":
                d_loss = 0.5 * (F.mse_loss(real_s, torch.ones_like(real_s)) + F.mse_loss(fake_s, torch.zeros_like(fake_s)))
            else:
                alpha = torch.rand(cond.shape[0], 1, 1, 1, 1).to(self.device)
                x_hat = (alpha * target + (1 - alpha) * fake).requires_grad_(True)
                gp = gradient_penalty(D(cond, x_hat), x_hat)
                d_loss = fake_s.mean() - real_s.mean() + c.lambda_gp * gp
                out["D/gp"] = gp.item()
            self.optimizers["D"].zero_grad(set_to_none=True)
            d_loss.backward()
            self.optimizers["D"].step()
            out["D/loss"] = d_loss.item()
        fake = G(cond)
        fake_s = D(cond, fake)
        g_adv = F.mse_loss(fake_s, torch.ones_like(fake_s)) if c.adversarial == "lsgan" else -fake_s.mean()
        g_l1 = (fake - target).abs().mean()
        g_loss = g_adv + c.lambda_l1 * g_l1
        self.optimizers["G"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["G"].step()
        out.update({"G/adv": g_adv.item(), "G/l1": g_l1.item(), "G/l1_hu": g_l1.item() * c.hu_range.width / 2,
                    "G/loss": g_loss.item(), "loss": g_l1.item()})
        return out

    # -- evaluation --------------------------------------------------------------------------
    def model(self) -> cgan.CGANModel:
        c = self.config
        return cgan.CGANModel(self.G, c.task, c.hu_range, c.block, self.name, degradation=c.degradation,
                              device=self.device)

    def heldout(self) -> np.ndarray:
        c = self.config
        v = self.load_data()[0]
        slab = v[v.shape[0] - c.holdout:].astype(np.float32)
        if c.eval_crop and c.eval_crop < min(slab.shape[1:]):
            y0 = (slab.shape[1] - c.eval_crop) // 2
            x0 = (slab.shape[2] - c.eval_crop) // 2
            slab = slab[:, y0:y0 + c.eval_crop, x0:x0 + c.eval_crop]
        return slab

    def _restore_heldout(self, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(degraded, restored)`` of a held-back clean volume: the same degradation seed every time, the
        generator in eval mode for the pass (and back to its mode after)."""
        c = self.config
        cond = cgan.degrade(clean, c.degradation, np.random.default_rng(1234))
        training = self.G.training
        self.G.eval()
        try:
            return cond, self.model().run_volume(cond, overlap=c.eval_overlap)
        finally:
            self.G.train(training)

    def evaluate(self) -> dict:
        """PSNR/SSIM vs the clean held-back CT: model output and the degraded input (the baseline)."""
        c = self.config
        if c.holdout <= 0:
            return {}
        clean = self.heldout()
        cond, out = self._restore_heldout(clean)
        out = np.rint(np.clip(out, c.hu_lower, c.hu_upper))
        rows = [
            {"method": f"degraded input ({c.task})", "psnr": round(psnr(clean, cond), 3),
             "ssim": round(ssim(clean, cond), 4)},
            {"method": f"cGAN output (overlap {c.eval_overlap})", "psnr": round(psnr(clean, out), 3),
             "ssim": round(ssim(clean, out), 4)},
        ]
        return {"evaluation": {"heldout": f"last {c.holdout} slices of {self._sources[0]} "
                                          f"(after a {c.gap}-slice gap), shape {list(clean.shape)}",
                               "data_range_hu": 4095, "noise_seed": 1234, "rows": rows}}

    #: the preview's region: at most this many pixels square from the middle of the held-back slab
    PREVIEW_SIZE = 96

    @torch.no_grad()
    def preview(self, step: int):
        """The middle held-back slice (a central crop) degraded with a fixed seed | the model's output | clean, HU.

        The whole held-back slab under the crop goes through the model (overlapped 3D blocks, as ``evaluate``
        does), so the slice shown has its 3D context."""
        c = self.config
        if c.holdout <= 0 or (self._volumes is None and self.data_dir is None):
            return None
        clean = self.heldout()
        h, w = clean.shape[1:]
        size = max(c.block, min(self.PREVIEW_SIZE, h, w))
        y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
        clean = clean[:, y0:y0 + size, x0:x0 + size]
        cond, out = self._restore_heldout(clean)
        z = len(clean) // 2
        return np.stack([cond[z], np.clip(out[z], c.hu_lower, c.hu_upper), clean[z]]).astype(np.float32)

    def export_card(self) -> dict:
        from ctstudio.training.recipe_ggcl import data_licence

        c = self.config
        n_slices = sum(v.shape[0] - c.holdout - c.gap for v in (self._volumes or []))
        return {
            "summary": f"3D cGAN ({c.task}) on {c.block}³ CT blocks, trained on {len(self._sources)} volume(s) "
                       f"({n_slices} training slices)",
            "method": "3D U-Net generator + conditional 3D PatchGAN critic + L1 (pix2pix in 3D), "
                      "after Mangalagiri et al.",
            "task": c.task,
            "degradation": c.degradation.to_dict(),
            "data_licence": data_licence(self._sources),
            "hu_range": [c.hu_lower, c.hu_upper],
            "limitations": [
                "the noise is simulated (Poisson on the image), not a real low-dose scan; not for clinical use",
            ],
        }


def build(config: str, data_dir: Path | None = None) -> CGANRecipe:
    from ctstudio.training.recipes import load_config

    recipe = CGANRecipe(load_config(CGANConfig, config), data_dir)
    recipe.name = f"cgan-{config}" if config in ("tiny", "demo", "paper") else "cgan-model"
    return recipe
