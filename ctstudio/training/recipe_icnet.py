"""Recipe: IC-Net, self-supervised on real adjacent slice pairs in the ROI window [-150, 150] HU.

A real slice x, windowed to the ROI and mapped to [-1, 1], gets a synthetic intensity drift
``x_hat = (x - mean(x)) * mu + mean(x)``, ``mu ~ U[0.7, 1.3]`` (mean over the windowed slice); the net sees
(x_hat, prior slice) and is trained with L1 to give back x.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctstudio.imaging.intensity import ICNET_ROI, HURange, hu_to_model, intensity_drift
from ctstudio.models.icnet import ICNet, ICNetConfig
from ctstudio.models.score_unet import count_parameters
from ctstudio.training import datasets
from ctstudio.training.recipes import load_config
from ctstudio.training.trainer import Recipe


@dataclass(frozen=True)
class ICNetTrainConfig:
    image_size: int = 64
    crop: int = 32
    base_channels: int = 8
    channel_mult: tuple[int, ...] = (1, 2, 4)
    roi_lower: float = -150.0
    roi_upper: float = 150.0
    mu_low: float = 0.7
    mu_high: float = 1.3
    lr: float = 1e-3
    batch_size: int = 16
    steps: int = 1500
    checkpoint_every: int = 250
    ema_decay: float = 0.995
    flip_lr: bool = True

    @classmethod
    def tiny(cls) -> "ICNetTrainConfig":
        return cls(image_size=16, crop=0, base_channels=8, channel_mult=(1, 2), batch_size=4, steps=20,
                   checkpoint_every=10, lr=1e-3, ema_decay=0.9)

    @classmethod
    def demo(cls) -> "ICNetTrainConfig":
        return cls()

    @classmethod
    def paper(cls) -> "ICNetTrainConfig":
        return cls(image_size=256, crop=0, base_channels=32, channel_mult=(1, 2, 4, 8), lr=2e-4, batch_size=16,
                   steps=100_000, checkpoint_every=5000, ema_decay=0.999, flip_lr=False)

    def net(self) -> ICNetConfig:
        return ICNetConfig(self.base_channels, self.channel_mult)

    def roi(self) -> HURange:
        return HURange(self.roi_lower, self.roi_upper, ICNET_ROI.name)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


class ICNetRecipe(Recipe):
    kind = "icnet"
    preview_window = "icnet-roi"

    def __init__(self, cfg: ICNetTrainConfig, data_dir: Path | None, name: str = "icnet"):
        self.config = cfg
        self.name = name
        self.net = ICNet(cfg.net())
        self.modules = {"net": self.net}
        self.optimizers = {"net": torch.optim.Adam(self.net.parameters(), lr=cfg.lr)}
        self.ema_modules = ("net",)
        self.ema_decay = cfg.ema_decay
        self.device = torch.device("cpu")
        self.files: list[str] = []
        self.pairs = None
        if data_dir is not None:
            self.files = [str(p) for p in datasets.find_volumes(data_dir)]
            self.pairs = datasets.slice_pairs(datasets.load_volumes(data_dir), cfg.image_size)

    def corrupt(self, pairs_hu: np.ndarray, rng: np.random.Generator):
        """(N, 2, H, W) HU pairs -> (x_hat, prior, target) in ROI model space, float32 arrays (N, 1, H, W)."""
        cfg = self.config
        roi = cfg.roi()
        prior, x = hu_to_model(pairs_hu[:, 0], roi), hu_to_model(pairs_hu[:, 1], roi)
        mu = rng.uniform(cfg.mu_low, cfg.mu_high, len(x))
        x_hat = intensity_drift(x, mu)
        return x_hat[:, None], prior[:, None], x[:, None]

    def make_batches(self, data_dir, rng: np.random.Generator):
        cfg = self.config
        for idx in datasets.batch_iterator(len(self.pairs), cfg.batch_size, rng):
            b = self.pairs[idx]
            if cfg.crop and cfg.crop < b.shape[-1]:
                b = datasets.random_crops(b, cfg.crop, rng)
            if cfg.flip_lr:
                flip = rng.random(len(idx)) < 0.5
                b = np.where(flip[:, None, None, None], b[..., ::-1], b)
            yield tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in self.corrupt(b, rng))

    def train_step(self, batch, step: int) -> dict[str, float]:
        x_hat, prior, target = (t.to(self.device) for t in batch)
        opt = self.optimizers["net"]
        loss = (self.net(x_hat, prior) - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """MAE (HU, ROI pixels) of drifted real slices before and after IC-Net, fixed drifts."""
        if self.pairs is None:
            return {}
        cfg = self.config
        rng = np.random.default_rng(1234)
        sel = self.pairs[rng.permutation(len(self.pairs))[:64]]
        x_hat, prior, target = self.corrupt(sel, rng)
        out = self.net(torch.from_numpy(x_hat).to(self.device), torch.from_numpy(prior).to(self.device)).cpu().numpy()
        scale = cfg.roi().width / 2.0
        inside = np.abs(target) < 1
        before = float(np.abs(x_hat - target)[inside].mean() * scale)
        after = float(np.abs(out.clip(-1, 1) - target)[inside].mean() * scale)
        return {"eval_mae_hu_before": round(before, 2), "eval_mae_hu_after": round(after, 2),
                "eval_note": "64 training pairs, mu ~ U[0.7, 1.3], MAE over ROI pixels"}

    def export_config(self) -> dict:
        cfg = self.config
        return {"net": cfg.net().to_dict(), "roi": cfg.roi().to_dict(), "training": cfg.to_dict()}

    def export_card(self) -> dict:
        cfg = self.config
        return {"summary": f"IC-Net intensity calibration, ROI [{cfg.roi_lower:g}, {cfg.roi_upper:g}] HU",
                "resolution": [cfg.image_size, cfg.image_size], "hu_range": [cfg.roi_lower, cfg.roi_upper],
                "parameters": count_parameters(self.net), "training_files": self.files,
                "training_pairs": 0 if self.pairs is None else int(len(self.pairs))}


def build(config: str, data_dir: Path | None) -> ICNetRecipe:
    cfg = load_config(ICNetTrainConfig, config)
    name = f"icnet-{config if config in ('tiny', 'demo', 'paper') else Path(config).stem}"
    return ICNetRecipe(cfg, data_dir, name=name)
