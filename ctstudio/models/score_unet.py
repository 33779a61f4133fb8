"""NCSN++-style score network for K adjacent CT slices, and its preconditioned wrapper.

``ScoreUNet`` is the U-Net: Gaussian Fourier embedding of log sigma, residual blocks with the
embedding added, self-attention at the low resolutions, skip connections from the encoder to the
decoder. Its input is K adjacent slices in ``[-1, 1]`` as K channels.

``ScoreModel`` wraps it with the preconditioning written out plainly (as in Karras et al. 2022 for the
VE case): ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)``, and exposes
``score(x, sigma) = (D(x, sigma) - x) / sigma^2``. Training it with denoising score matching and
``lambda(sigma) = sigma^2`` is exactly the NCSN++/VE-SDE objective; the preconditioning only keeps the
network's input and target at unit scale, which matters when a model is trained in minutes on a CPU.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
from torch import nn

from ctstudio.models.layers import Downsample, GaussianFourierProjection, ResBlock, SelfAttention, Upsample, group_norm


@dataclass(frozen=True)
class ScoreUNetConfig:
    in_channels: int = 2            # K adjacent slices
    image_size: int = 64
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = (8,)
    dropout: float = 0.0
    fourier_scale: float = 16.0
    sigma_data: float = 0.5
    # conditional use only: the generated slice is denoised as its difference to the nearest clean prior slice
    # (preconditioned with the smaller ``sigma_data_residual``, the SD of adjacent-slice differences); 0 = off
    sigma_data_residual: float = 0.0

    @classmethod
    def paper(cls, k: int = 2) -> "ScoreUNetConfig":
        """The ASCII paper's 256^2 NCSN++ settings (Song et al. configs/ve), adapted to K channels."""
        return cls(in_channels=k, image_size=256, base_channels=128, channel_mult=(1, 1, 2, 2, 2, 2, 2),
                   num_res_blocks=2, attn_resolutions=(16,), dropout=0.0)

    @classmethod
    def tiny(cls, k: int = 2) -> "ScoreUNetConfig":
        """Seconds on a CPU: for tests."""
        return cls(in_channels=k, image_size=16, base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                   attn_resolutions=(8,))

    @classmethod
    def demo(cls, k: int = 2) -> "ScoreUNetConfig":
        """The bundled demo model: 64^2 slices, trainable on a 2-core CPU in well under an hour."""
        return cls(in_channels=k, image_size=64, base_channels=32, channel_mult=(1, 2, 2, 2),
                   num_res_blocks=1, attn_resolutions=(8,))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ScoreUNetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


class ScoreUNet(nn.Module):
    """F(x, c_noise): (B, K, H, W) -> (B, K, H, W)."""

    def __init__(self, cfg: ScoreUNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.base_channels
        emb = ch * 4
        self.fourier = GaussianFourierProjection(ch, cfg.fourier_scale)
        self.emb_mlp = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [ch]
        cur = ch
        res = cfg.image_size
        for level, mult in enumerate(cfg.channel_mult):
            out = ch * mult
            for _ in range(cfg.num_res_blocks):
                blocks = nn.ModuleList([ResBlock(cur, out, emb, cfg.dropout)])
                if res in cfg.attn_resolutions:
                    blocks.append(SelfAttention(out))
                self.down.append(blocks)
                cur = out
                skips.append(cur)
            if level != len(cfg.channel_mult) - 1:
                self.down.append(nn.ModuleList([Downsample(cur)]))
                skips.append(cur)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(cur, cur, emb, cfg.dropout), SelfAttention(cur),
                                  ResBlock(cur, cur, emb, cfg.dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            out = ch * mult
            for _ in range(cfg.num_res_blocks + 1):
                blocks = nn.ModuleList([ResBlock(cur + skips.pop(), out, emb, cfg.dropout)])
                if res in cfg.attn_resolutions:
                    blocks.append(SelfAttention(out))
                self.up.append(blocks)
                cur = out
            if level != 0:
                self.up.append(nn.ModuleList([Upsample(cur)]))
                res *= 2
        self.norm_out = group_norm(cur)
        self.conv_out = nn.Conv2d(cur, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        emb = self.emb_mlp(self.fourier(c_noise))
        h = self.conv_in(x)
        hs = [h]
        for blocks in self.down:
            for b in blocks:
                h = b(h, emb) if isinstance(b, ResBlock) else b(h)
            hs.append(h)
        for b in self.mid:
            h = b(h, emb) if isinstance(b, ResBlock) else b(h)
        for blocks in self.up:
            if isinstance(blocks[0], Upsample):
                h = blocks[0](h)
                continue
            h = torch.cat([h, hs.pop()], dim=1)
            for b in blocks:
                h = b(h, emb) if isinstance(b, ResBlock) else b(h)
        return self.conv_out(torch.nn.functional.silu(self.norm_out(h)))


class ScoreModel(nn.Module):
    """Preconditioned denoiser ``D(x, sigma)`` around a :class:`ScoreUNet`, with ``score()``.

    ``channels_last``: feed the U-Net NHWC (off by default: it gave nothing at 64^2 on the 2-core CI CPU; set it
    where ``bench/sampler_bench.py`` shows it faster). Mixed precision is the trainer's option (bf16 autocast
    around the whole forward pass), not the model's.
    """

    def __init__(self, cfg: ScoreUNetConfig):
        super().__init__()
        self.cfg = cfg
        self.net = ScoreUNet(cfg)
        self.channels_last = False

    @property
    def sigma_data(self) -> float:
        return self.cfg.sigma_data

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, clean: torch.Tensor | None = None) -> torch.Tensor:
        """The denoised estimate of ``x`` at noise level ``sigma`` (shape (B,) or scalar).

        ``clean``: optional (K,) or (B, K) mask of channels given *without* noise (conditional use: the prior
        slices as a condition). Those channels are fed at sigma 0 (``c_in = 1 / sigma_data``) and returned
        unchanged; ``sigma`` is then the noise level of the other channels. With ``sigma_data_residual`` set, a
        noisy channel of an example that has clean channels is denoised relative to the last clean one (its
        nearest prior slice): ``D = ref + c_skip (x - ref) + c_out F(c_in (x - ref))``, with the coefficients of
        ``sigma_data_residual``. The same SDE, only the network learns the (small) change from slice to slice.
        """
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        s = sigma[:, None, None, None]
        sd = self.cfg.sigma_data
        c_skip, c_out, c_in = _preconditioning(s, sd)
        offset = None
        if clean is not None:
            cm = torch.as_tensor(clean, device=x.device).to(torch.float32)
            cm = cm.reshape(-1, x.shape[1], 1, 1) if cm.dim() == 2 else cm.reshape(1, -1, 1, 1)
            cm = cm.expand(x.shape[0], -1, -1, -1)
            sr = self.cfg.sigma_data_residual
            if sr > 0:
                has_ref = (cm.flatten(1).amax(1) > 0).to(torch.float32)[:, None, None, None]
                last = (cm[:, :, 0, 0] * torch.arange(1, x.shape[1] + 1, device=x.device)).argmax(1)
                ref = x[torch.arange(x.shape[0], device=x.device), last][:, None]
                res = has_ref * (1 - cm)  # the noisy channels of conditioned examples
                offset = res * ref
                r_skip, r_out, r_in = _preconditioning(s, sr)
                c_skip = c_skip * (1 - res) + res * r_skip
                c_out = c_out * (1 - res) + res * r_out
                c_in = c_in * (1 - res) + res * r_in
            c_skip = c_skip * (1 - cm) + cm
            c_out = c_out * (1 - cm)
            c_in = c_in * (1 - cm) + cm / sd
        c_noise = torch.log(sigma) / 4.0
        if offset is not None:
            x = x - offset
        inp = c_in * x
        if self.channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        f = self.net(inp, c_noise)
        out = c_skip * x + c_out * f.contiguous()
        return out if offset is None else out + offset

    def score(self, x: torch.Tensor, sigma, clean: torch.Tensor | None = None) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        s = (sigma if sigma.numel() > 1 else sigma.expand(x.shape[0]))[:, None, None, None]
        return (self(x, sigma, clean) - x) / s ** 2


def _preconditioning(s: torch.Tensor, sd: float):
    """Karras et al.'s (c_skip, c_out, c_in) at noise level ``s`` for data of SD ``sd``."""
    norm = torch.sqrt(s ** 2 + sd ** 2)
    return sd ** 2 / norm ** 2, s * sd / norm, 1.0 / norm


_log = logging.getLogger(__name__)


def compile_model(model: nn.Module, example: tuple, backend: str = "inductor", **compile_options):
    """``torch.compile(model)``, checked by one call on ``example`` (the compiler works lazily, at the first call).

    Returns ``(callable, compiled)``. Where no compiler works (no C++ toolchain, an unsupported platform or op,
    a torch without dynamo) it logs one warning line naming the reason and returns the eager ``model`` and
    ``False``: a missing compiler is never an error. The compiled callable shares the model's parameters, so its
    outputs follow the model's weights; they equal the eager outputs within float rounding (the compiler fuses
    and reorders operations).
    """
    try:
        compiled = torch.compile(model, backend=backend, **compile_options)
        with torch.no_grad():
            compiled(*example)
    except Exception as exc:  # noqa: BLE001 - any failure of the optional compiler means "run eagerly"
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        _log.warning("torch.compile unavailable (%s: %s); running the model eagerly", type(exc).__name__, reason)
        return model, False
    return compiled, True
