"""Recipe: the ASCII score model (VE-SDE, denoising score matching, K adjacent slices as channels)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctstudio.diffusion.losses import dsm_loss
from ctstudio.diffusion.sde import VESDE
from ctstudio.imaging.intensity import HURange, hu_to_model, model_to_hu
from ctstudio.models.layers import count_parameters
from ctstudio.models.score_unet import ScoreModel, ScoreUNetConfig
from ctstudio.training import datasets
from ctstudio.training.recipes import load_config
from ctstudio.training.trainer import Recipe


@dataclass(frozen=True)
class ScoreTrainConfig:
    k: int = 2
    image_size: int = 64
    crop: int = 32  # train on random crops (0: whole slices); the net is convolutional, the prior slice gives context
    base_channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    sigma_min: float = 0.001
    sigma_max: float = 100.0
    hu_lower: float = -1024.0
    hu_upper: float = 3071.0
    lr: float = 1e-3
    warmup: int = 100
    grad_clip: float = 1.0
    batch_size: int = 8
    steps: int = 6000
    checkpoint_every: int = 250
    ema_decay: float = 0.999
    preview_every: int = 500
    flip_lr: bool = True
    air_pad: bool = True
    # the trainer's bf16 autocast ("bf16") or none (""): only where measured faster (6x slower on the CI CPU)
    autocast: str = ""
    channels_last: bool = False
    init_from: str = ""  # fine-tune: start from this score model's weights (name or path; same network config)
    # conditional training (losses.dsm_loss): fraction of stacks whose prior slices are given clean; 0 = the paper
    cond_prob: float = 0.0
    sigma_data_residual: float = 0.0  # > 0: conditioned slices are denoised as a change from the prior slice
    cond_noise: float = 0.0  # conditioning augmentation: prior slices noised with SD ~ U(0, cond_noise)
    # "unit": the network's error weighted alike at every level (losses.dsm_loss sigma_data); "sigma2": lambda =
    # sigma^2 applied literally to the preconditioned denoiser (starves the high levels; kept to reproduce old runs)
    loss_weight: str = "sigma2"
    # noise levels: "uniform" t (the paper) or "lognormal" log sigma ~ N(p_mean, p_std^2)
    t_sampling: str = "uniform"
    p_mean: float = -1.2
    p_std: float = 1.2

    @classmethod
    def tiny(cls) -> "ScoreTrainConfig":
        return cls(image_size=16, crop=0, base_channels=16, channel_mult=(1, 2), attn_resolutions=(8,), sigma_max=20.0,
                   lr=2e-3, warmup=0, batch_size=4, steps=20, checkpoint_every=10, preview_every=0, ema_decay=0.9)

    @classmethod
    def demo(cls) -> "ScoreTrainConfig":
        """The bundled demo (scripts/train_demo_score.sh): whole 64^2 slices, conditional on the clean prior slice
        in 90% of stacks (the rest: the paper's joint objective, so inpainting still works), the new slice
        denoised as a change from the prior one, conditioning augmentation, log-normal levels, unit weighting."""
        return cls(crop=0, steps=7500, checkpoint_every=500, preview_every=2500, cond_prob=0.9,
                   sigma_data_residual=0.05, cond_noise=0.01, t_sampling="lognormal", p_mean=-2.0, p_std=1.6,
                   loss_weight="unit")

    @classmethod
    def paper(cls) -> "ScoreTrainConfig":
        """ASCII paper (NCSN++ 256^2, 12-bit range, sigma 0.001..1348); K=2."""
        return cls(image_size=256, crop=0, base_channels=128, channel_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2,
                   attn_resolutions=(16,), dropout=0.1, sigma_min=0.001, sigma_max=1348.0, lr=2e-4, warmup=5000,
                   batch_size=8, steps=1_300_000, checkpoint_every=10_000, ema_decay=0.999, preview_every=10_000,
                   flip_lr=False)

    def unet(self) -> ScoreUNetConfig:
        return ScoreUNetConfig(in_channels=self.k, image_size=self.image_size, base_channels=self.base_channels,
                               channel_mult=self.channel_mult, num_res_blocks=self.num_res_blocks,
                               attn_resolutions=self.attn_resolutions, dropout=self.dropout,
                               sigma_data_residual=self.sigma_data_residual)

    def sde(self) -> VESDE:
        return VESDE(self.sigma_min, self.sigma_max)

    def hu_range(self) -> HURange:
        return HURange(self.hu_lower, self.hu_upper)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def model_config(cfg: ScoreTrainConfig) -> dict:
    """What an inference loader needs (stored as the model file's config)."""
    return {"unet": cfg.unet().to_dict(), "sde": cfg.sde().to_dict(), "k": cfg.k,
            "hu_range": cfg.hu_range().to_dict(), "image_size": cfg.image_size,
            "direction": "inferior", "training": cfg.to_dict()}


class ScoreRecipe(Recipe):
    kind = "score"
    preview_window = "12-bit"

    def __init__(self, cfg: ScoreTrainConfig, data_dir: Path | None, name: str = "score"):
        self.config = cfg
        self.name = name
        self.sde = cfg.sde()
        self.model = ScoreModel(cfg.unet())
        self.autocast = cfg.autocast
        self.model.channels_last = cfg.channels_last
        if cfg.init_from:
            self._init_from(cfg.init_from)
        self.modules = {"model": self.model}
        self.optimizers = {"model": torch.optim.Adam(self.model.parameters(), lr=cfg.lr)}
        self.ema_modules = ("model",)
        self.ema_decay = cfg.ema_decay
        self.preview_every = cfg.preview_every
        self.device = torch.device("cpu")
        self.data_files: list[dict] = []
        self.stacks = None
        if data_dir is not None:
            vols, self.data_files = datasets.read_training_volumes(data_dir)
            hu = datasets.adjacent_stacks(vols, cfg.k, cfg.image_size, air_pad=cfg.air_pad)
            self.stacks = hu_to_model(hu, cfg.hu_range())
            self.sampler = datasets.ShuffledBatches(len(self.stacks), cfg.batch_size)

    def _init_from(self, name_or_path: str) -> None:
        from ctstudio import checkpoints
        from ctstudio.errors import ModelError

        meta, tensors = checkpoints.load_model(name_or_path, kind="score")
        if meta["config"].get("unet") != self.config.unet().to_dict():
            raise ModelError("init_from: that model's network config differs from this config's",
                             path=checkpoints.resolve_model(name_or_path),
                             hint="fine-tune with the same base_channels/channel_mult/num_res_blocks/attn/k")
        checkpoints.load_into(self.model, tensors, "model", path=checkpoints.resolve_model(name_or_path))

    def make_batches(self, data_dir, rng: np.random.Generator):
        cfg = self.config
        if self.stacks is None:
            raise ValueError("the score recipe was built without data")
        while True:
            idx = self.sampler.next(rng)
            b = self.stacks[idx]
            if cfg.crop and cfg.crop < b.shape[-1]:
                b = datasets.random_crops(b, cfg.crop, rng)
            if cfg.flip_lr:
                flip = rng.random(len(idx)) < 0.5
                b = np.where(flip[:, None, None, None], b[..., ::-1], b)
            yield torch.from_numpy(np.ascontiguousarray(b))

    def train_step(self, batch, step: int, nets: dict | None = None) -> dict[str, float]:
        cfg = self.config
        model = (nets or self.modules)["model"]
        opt = self.optimizers["model"]
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else cfg.lr
        for g in opt.param_groups:
            g["lr"] = lr
        x = batch.to(self.device)
        loss = dsm_loss(model, x, self.sde, cond_prob=cfg.cond_prob, t_sampling=cfg.t_sampling,
                        p_mean=cfg.p_mean, p_std=cfg.p_std, cond_noise=cfg.cond_noise,
                        sigma_data=self.loss_sigma_data())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        opt.step()
        return {"loss": float(loss.detach())}

    def loss_sigma_data(self) -> tuple[float, float] | None:
        """What dsm_loss needs to weight the network's error alike at every level (None: literal sigma^2)."""
        cfg = self.config
        if cfg.loss_weight == "sigma2":
            return None
        if cfg.loss_weight != "unit":
            raise ValueError(f"loss_weight must be 'unit' or 'sigma2', not {cfg.loss_weight!r}")
        unet = cfg.unet()
        return (unet.sigma_data, unet.sigma_data_residual)

    def preview(self, step: int):
        """A real stack's last slice next to the one generated from its other slices (HU)."""
        from ctstudio.diffusion.samplers import sample_heun

        if self.stacks is None:
            return None
        cfg = self.config
        ref = torch.from_numpy(self.stacks[len(self.stacks) // 2][None]).to(self.device)
        mask = torch.zeros_like(ref)
        mask[:, :-1] = 1
        g = torch.Generator(device=self.device).manual_seed(0)
        sig = self.sde.karras_sigmas(12, device=self.device)
        x = torch.randn(ref.shape, generator=g, device=self.device) * sig[0]
        out = sample_heun(self.model, x, sig, known=ref, mask=mask, generator=g)
        pair = torch.stack([ref[0, -1], out[0, -1]]).cpu().numpy()
        return model_to_hu(pair, cfg.hu_range())

    def export_config(self) -> dict:
        return model_config(self.config)

    def export_card(self) -> dict:
        cfg = self.config
        return {
            "summary": f"ASCII score model, K={cfg.k}, {cfg.image_size}x{cfg.image_size} slices",
            "resolution": [cfg.image_size, cfg.image_size],
            "hu_range": [cfg.hu_lower, cfg.hu_upper],
            "sigma_min": cfg.sigma_min, "sigma_max": cfg.sigma_max,
            "parameters": count_parameters(self.model),
            "training_stacks": 0 if self.stacks is None else int(len(self.stacks)),
            "direction": "inferior (channel 0 = most superior slice; each new slice is the next one towards the feet)",
        }


def build(config: str, data_dir: Path | None) -> ScoreRecipe:
    cfg = load_config(ScoreTrainConfig, config)
    name = f"score-k{cfg.k}-{config if config in ('tiny', 'demo', 'paper') else Path(config).stem}"
    return ScoreRecipe(cfg, data_dir, name=name)
