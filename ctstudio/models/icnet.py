"""IC-Net (Jeong et al. 2023): a small U-Net mapping (generated slice, prior slice) -> calibrated slice.

Both inputs are in ``[-1, 1]`` of the IC-Net ROI window [-150, 150] HU; the output is the input slice plus
a learned correction (residual), so an untrained or uncertain net leaves the slice as it was.
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

    @classmethod
    def tiny(cls) -> "ICNetConfig":
        return cls(base_channels=8, channel_mult=(1, 2))

    @classmethod
    def demo(cls) -> "ICNetConfig":
        return cls(base_channels=16, channel_mult=(1, 2, 4))

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
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


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
        for j, blk in enumerate(self.dec):
            h = blk(torch.cat([h, skips.pop()], dim=1))
            if j < len(self.ups):
                h = self.ups[j](h)
        return generated + self.conv_out(torch.nn.functional.silu(self.norm_out(h)))
