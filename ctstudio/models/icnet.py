"""IC-Net (Jeong et al. 2023): a small U-Net mapping (generated slice, prior slice) -> calibrated slice.

Both inputs are in ``[-1, 1]`` of the IC-Net ROI window [-150, 150] HU; the output is the input slice plus
a learned correction (residual), so an untrained or uncertain net leaves the slice as it was.

``global_context`` adds a global path to the same U-Net: every encoder level and the bottleneck are
pooled (mean over the whole slice; mean and standard deviation over the generated slice's ROI pixels),
and a small MLP turns them into one scale ``s`` and shift ``t`` per image, applied to the generated slice
as part of the residual: ``out = g + s * g + t + unet(g, prior)``. The drift IC-Net undoes is one affine
map of all ROI pixels (``x = g / mu + m (1 - 1 / mu)``, ``m`` the slice mean), so ``mu`` and ``m`` are best
estimated from statistics of the whole slice against its prior, which convolutions alone gather poorly.
The last layer is zero-initialised, so an untrained net is still the identity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ctstudio.models.layers import Downsample, ResBlock, Upsample, group_norm


@dataclass(frozen=True)
class ICNetConfig:
    base_channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2, 4)
    #: the global-context path (per-image scale/shift from pooled features); False = the plain U-Net
    global_context: bool = False

    @classmethod
    def tiny(cls) -> "ICNetConfig":
        return cls(base_channels=8, channel_mult=(1, 2), global_context=True)

    @classmethod
    def demo(cls) -> "ICNetConfig":
        return cls(base_channels=8, channel_mult=(1, 2, 4), global_context=True)

    @classmethod
    def paper(cls) -> "ICNetConfig":
        return cls(base_channels=32, channel_mult=(1, 2, 4, 8))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ICNetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        cfg = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})
        if not isinstance(cfg.global_context, bool):
            raise TypeError(f"global_context must be true or false, got {cfg.global_context!r}")
        return cfg


class ICNet(nn.Module):
    def __init__(self, cfg: ICNetConfig = ICNetConfig()):
        super().__init__()
        self.cfg = cfg
        ch = cfg.base_channels
        self.conv_in = nn.Conv2d(2, ch, 3, padding=1)
        self.enc = nn.ModuleList()
        self.downs = nn.ModuleList()
        cur = ch
        chans = []
        for i, m in enumerate(cfg.channel_mult):
            self.enc.append(ResBlock(cur, ch * m))
            cur = ch * m
            chans.append(cur)
            if i < len(cfg.channel_mult) - 1:
                self.downs.append(Downsample(cur))
        self.mid = ResBlock(cur, cur)
        self.dec = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in reversed(range(len(cfg.channel_mult))):
            self.dec.append(ResBlock(cur + chans[i], ch * cfg.channel_mult[i]))
            cur = ch * cfg.channel_mult[i]
            if i > 0:
                self.ups.append(Upsample(cur))
        self.norm_out = group_norm(cur)
        self.conv_out = nn.Conv2d(cur, 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.global_mlp = None
        if cfg.global_context:
            pooled = 3 * (sum(chans) + chans[-1])  # slice mean, ROI mean and ROI std of every level + mid
            hidden = 8 * ch
            self.global_mlp = nn.Sequential(nn.Linear(pooled, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                            nn.SiLU(), nn.Linear(hidden, 2))
            nn.init.zeros_(self.global_mlp[-1].weight)
            nn.init.zeros_(self.global_mlp[-1].bias)

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.cfg.channel_mult) - 1)

    def forward(self, generated: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) each, H and W multiples of ``self.multiple`` -> (B, 1, H, W)."""
        h = self.conv_in(torch.cat([generated, prior], dim=1))
        skips = []
        for i, blk in enumerate(self.enc):
            h = blk(h)
            skips.append(h)
            if i < len(self.downs):
                h = self.downs[i](h)
        h = self.mid(h)
        correction = 0.0
        if self.global_mlp is not None:
            correction = self._global_affine(generated, skips + [h])
        for j, blk in enumerate(self.dec):
            h = blk(torch.cat([h, skips.pop()], dim=1))
            if j < len(self.ups):
                h = self.ups[j](h)
        return generated + correction + self.conv_out(torch.nn.functional.silu(self.norm_out(h)))

    def _global_affine(self, generated: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        """``s * g + t`` with one (s, t) per image from the pooled features (B, 1, 1, 1 broadcast)."""
        inside = (generated.abs() < 1).to(generated.dtype)
        pooled = []
        for f in feats:
            m = torch.nn.functional.adaptive_avg_pool2d(inside, f.shape[-2:])
            n = m.sum(dim=(2, 3)).clamp_min(1e-3)
            mean = (f * m).sum(dim=(2, 3)) / n
            var = (((f - mean[:, :, None, None]) ** 2) * m).sum(dim=(2, 3)) / n
            pooled += [f.mean(dim=(2, 3)), mean, (var + 1e-6).sqrt()]
        st = self.global_mlp(torch.cat(pooled, dim=1))
        return st[:, 0, None, None, None] * generated + st[:, 1, None, None, None]
