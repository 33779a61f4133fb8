"""Recipe: IC-Net, self-supervised on real adjacent slice pairs in the ROI window [-150, 150] HU.

A real slice x, windowed to the ROI and mapped to [-1, 1], gets a synthetic intensity drift
``x_hat = (x - mean(x)) * mu + mean(x)``, ``mu ~ U[0.7, 1.3]`` (mean over the windowed slice); the net sees
(x_hat, prior slice) and is trained with L1 to give back x.

``keep_outside`` (default): the drift moves the ROI pixels only; pixels outside the ROI (air, bone) keep
their value, exactly as :func:`~ctstudio.imaging.intensity.intensity_drift_hu` (the robustness metric's
shift) does and as :class:`~ctstudio.diffusion.calibrate.ICNetCalibrator` assumes (it only replaces ROI
pixels). Without it, a darkening drift (mu < 1) lifts air from -1 into the ROI, the net learns to read mu
off the air level, and at calibration time (air stays air) it has nothing to read: measured on held-out
pairs (headsq slices 36-47), the old demo undid 16 % of a mu = 0.75 drift's error, and 96 % of
the same drift with the air lifted as in its training.
``roi_loss`` (default): L1 over the pixels the calibrator will replace (x_hat inside the ROI) only.
``holdout``: array slice indices ``[start, stop)`` of every volume kept out of training; the pairs inside
that band are the evaluation written into the model card (IC-Net against histogram matching).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctstudio.errors import ConfigError
from ctstudio.imaging.intensity import (ICNET_ROI, HURange, hu_to_model, intensity_drift, intensity_drift_hu,
                                        model_to_hu)
from ctstudio.models.icnet import ICNet, ICNetConfig
from ctstudio.models.layers import count_parameters
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
    #: the global-context path of the net (see ctstudio.models.icnet)
    global_context: bool = True
    #: drift only the ROI pixels; air and bone keep their values (as the calibrator applies it)
    keep_outside: bool = True
    #: L1 over the pixels the calibrator replaces (x_hat inside the ROI), not over air/bone
    roi_loss: bool = True
    #: also train on pairs in the other direction (next slice as the prior)
    swap_pairs: bool = True
    #: cosine decay of the learning rate to this fraction of ``lr`` at ``steps`` (1.0: constant)
    lr_final_frac: float = 1.0
    #: array slice indices [start, stop) held out of training in every volume (empty: none)
    holdout: tuple[int, ...] = ()

    @classmethod
    def tiny(cls) -> "ICNetTrainConfig":
        return cls(image_size=16, crop=0, base_channels=8, channel_mult=(1, 2), batch_size=4, steps=20,
                   checkpoint_every=10, lr=1e-3, ema_decay=0.9)

    @classmethod
    def demo(cls) -> "ICNetTrainConfig":
        return cls(crop=0, batch_size=8, steps=5000, checkpoint_every=250, lr=1e-3, lr_final_frac=0.05,
                   holdout=(36, 48))

    @classmethod
    def paper(cls) -> "ICNetTrainConfig":
        return cls(image_size=256, crop=0, base_channels=32, channel_mult=(1, 2, 4, 8), lr=2e-4, batch_size=16,
                   steps=100_000, checkpoint_every=5000, ema_decay=0.999, flip_lr=False, global_context=False)

    def net(self) -> ICNetConfig:
        return ICNetConfig(self.base_channels, self.channel_mult, self.global_context)

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
        #: a preview (drifted | calibrated | real) with every checkpoint
        self.preview_every = cfg.checkpoint_every
        self.device = torch.device("cpu")
        self.data_files: list[dict] = []
        self.pairs = None
        self.held_out = None
        if data_dir is not None:
            vols, self.data_files = datasets.read_training_volumes(data_dir)
            self.pairs, self.held_out = split_pairs(vols, cfg.image_size, cfg.holdout)
            if not len(self.pairs):
                raise ConfigError("no training pairs are left outside the held-out band",
                                  hint=f"holdout is {list(cfg.holdout)}; make it narrower")
            if cfg.swap_pairs:
                self.pairs = np.concatenate([self.pairs, self.pairs[:, ::-1]])
            self.sampler = datasets.ShuffledBatches(len(self.pairs), cfg.batch_size)

    def corrupt(self, pairs_hu: np.ndarray, rng: np.random.Generator):
        """(N, 2, H, W) HU pairs -> (x_hat, prior, target) in ROI model space, float32 arrays (N, 1, H, W)."""
        cfg = self.config
        roi = cfg.roi()
        prior, x = hu_to_model(pairs_hu[:, 0], roi), hu_to_model(pairs_hu[:, 1], roi)
        mu = rng.uniform(cfg.mu_low, cfg.mu_high, len(x))
        x_hat = intensity_drift(x, mu)
        if cfg.keep_outside:
            x_hat = np.where(np.abs(x) < 1, x_hat, x)
        return x_hat[:, None], prior[:, None], x[:, None]

    def make_batches(self, data_dir, rng: np.random.Generator):
        cfg = self.config
        while True:
            idx = self.sampler.next(rng)
            b = self.pairs[idx]
            if cfg.crop and cfg.crop < b.shape[-1]:
                b = datasets.random_crops(b, cfg.crop, rng)
            if cfg.flip_lr:
                flip = rng.random(len(idx)) < 0.5
                b = np.where(flip[:, None, None, None], b[..., ::-1], b)
            yield tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in self.corrupt(b, rng))

    def lr_at(self, step: int) -> float:
        cfg = self.config
        if cfg.lr_final_frac >= 1.0 or cfg.steps <= 0:
            return cfg.lr
        t = min(step / cfg.steps, 1.0)
        return cfg.lr * (cfg.lr_final_frac + (1 - cfg.lr_final_frac) * 0.5 * (1 + math.cos(math.pi * t)))

    def train_step(self, batch, step: int, nets: dict | None = None) -> dict[str, float]:
        net = (nets or self.modules)["net"]
        x_hat, prior, target = (t.to(self.device) for t in batch)
        opt = self.optimizers["net"]
        for g in opt.param_groups:
            g["lr"] = self.lr_at(step)
        err = (net(x_hat, prior) - target).abs()
        if self.config.roi_loss:
            mask = (x_hat.abs() < 1).to(err.dtype)
            loss = (err * mask).sum() / mask.sum().clamp_min(1.0)
        else:
            loss = err.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    #: the drift of the preview (a fixed darkening, inside the training range)
    PREVIEW_MU = 0.8

    @torch.no_grad()
    def preview(self, step: int):
        """One fixed real pair (the middle one): the slice drifted by mu = 0.8, IC-Net's output, the real slice (HU)."""
        if self.pairs is None or not len(self.pairs):
            return None
        roi = self.config.roi()
        pair = self.pairs[len(self.pairs) // 2][None]
        prior, x = hu_to_model(pair[:, 0], roi), hu_to_model(pair[:, 1], roi)
        x_hat = intensity_drift(x, np.full(1, self.PREVIEW_MU))
        if self.config.keep_outside:
            x_hat = np.where(np.abs(x) < 1, x_hat, x)
        t = (torch.from_numpy(np.ascontiguousarray(a[:, None], dtype=np.float32)).to(self.device) for a in (x_hat, prior))
        out = self.net(*t).clamp(-1, 1).cpu().numpy()[:, 0]
        out = np.where(np.abs(x_hat) < 1, out, x_hat)  # as the calibrator applies it: ROI pixels only
        return np.stack([model_to_hu(x_hat, roi)[0], model_to_hu(out, roi)[0], pair[0, 1]])

    @torch.no_grad()
    def evaluate(self) -> dict:
        """MAE (HU, ROI pixels) of drifted real slices before and after IC-Net, fixed drifts.

        With a held-out band: the band's pairs (both directions) shifted by fixed mu as the calibrator sees
        them (:func:`intensity_drift_hu`), IC-Net against histogram matching. Without: 64 training pairs.
        """
        if self.pairs is None:
            return {}
        if self.held_out is not None and len(self.held_out):
            return {"held_out": evaluate_held_out(self.net, self.config.roi(), self.held_out, self.config.holdout)}
        cfg = self.config
        rng = np.random.default_rng(1234)
        sel = self.pairs[rng.permutation(len(self.pairs))[:64]]
        x_hat, prior, target = self.corrupt(sel, rng)
        self.net.eval()
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
                "parameters": count_parameters(self.net),
                "training_pairs": 0 if self.pairs is None else int(len(self.pairs))}


def split_pairs(volumes, size: int, holdout: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) adjacent-slice pairs (N, 2, H, W) float32 HU, (prior, next) in the generation order.

    ``holdout`` is ``()`` or ``(start, stop)``: array slice indices. A pair with both slices in the band is
    held out, a pair with neither is for training, and the two pairs straddling an edge are dropped, so no
    held-out slice is ever seen in training.
    """
    if holdout and (len(holdout) != 2 or not 0 <= holdout[0] < holdout[1]):
        raise ConfigError(f"holdout must be [] or [start, stop] slice indices, got {list(holdout)}")
    train, held = [], []
    for v in volumes:
        a = datasets.inferior_ordered(v, size)  # superior -> inferior
        n = len(a)
        z = np.arange(n) if datasets.inferior_step(v) > 0 else np.arange(n)[::-1]  # array index of each
        for i in range(n - 1):
            inside = [bool(holdout) and holdout[0] <= z[j] < holdout[1] for j in (i, i + 1)]
            if all(inside):
                held.append(a[i:i + 2])
            elif not any(inside):
                train.append(a[i:i + 2])
    shape = (0, 2, size, size)
    return (np.stack(train) if train else np.zeros(shape, np.float32),
            np.stack(held) if held else np.zeros(shape, np.float32))


#: drifts of the held-out evaluation (the card's table)
EVAL_MUS = (0.75, 0.85, 1.0, 1.15, 1.25)


def evaluate_held_out(net, roi: HURange, pairs_hu: np.ndarray, band=(), mus=EVAL_MUS) -> dict:
    """ROI MAE in HU (before, IC-Net, histogram matching) per mu over held-out pairs, both directions."""
    from ctstudio.diffusion.calibrate import ICNetCalibrator, histogram_match

    net.eval()
    cal = ICNetCalibrator(net, roi)
    table = {}
    for mu in mus:
        errs = []
        for pair in pairs_hu:
            for prior, x in ((pair[0], pair[1]), (pair[1], pair[0])):
                inside = (x > roi.lower) & (x < roi.upper)
                g = intensity_drift_hu(x, mu, roi)
                errs.append([np.abs(c - x)[inside].mean() for c in (g, cal(g, prior), histogram_match(g, prior, roi))])
        table[f"mu={mu:g}"] = [round(float(e), 2) for e in np.mean(errs, axis=0)]
    return {"mae_hu_before_icnet_histogram": table, "pairs": int(len(pairs_hu)), "directions": 2,
            "slices": list(band), "note": "held-out adjacent pairs (array slice indices [start, stop)), both "
            "directions, shifted by intensity_drift_hu(mu); ROI MAE in HU over the target's ROI pixels"}


def build(config: str, data_dir: Path | None) -> ICNetRecipe:
    cfg = load_config(ICNetTrainConfig, config)
    name = f"icnet-{config if config in ('tiny', 'demo', 'paper') else Path(config).stem}"
    return ICNetRecipe(cfg, data_dir, name=name)
