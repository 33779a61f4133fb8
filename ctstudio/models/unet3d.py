"""3D conditional GAN networks on CT blocks (pix2pix in 3D, after Mangalagiri et al.).

* :class:`UNet3DGenerator` -- a 3D U-Net: ``depth`` stride-2 levels of (conv3d, norm, LeakyReLU) with
  skip connections, trilinear upsampling + conv on the way up (no transposed convs), tanh output.
  ``residual=True`` predicts the correction to the condition (``y = x + tanh(.)``), which suits
  denoising / depixelation where the output is close to the input.
* :class:`PatchCritic3D` -- a conditional 3D PatchGAN critic: it sees (condition, image) concatenated on
  the channel axis and gives a map of patch scores.

Input blocks are (B, C, D, H, W) with D, H, W multiples of ``2**depth`` (32³ in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _norm3d(ch: int) -> nn.Module:
    return nn.InstanceNorm3d(ch, affine=True, track_running_stats=False)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(cin, cout, 3, 1, 1, bias=False), _norm3d(cout), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv3d(cout, cout, 3, 1, 1, bias=False), _norm3d(cout), nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, x):
        return self.body(x)


class UNet3DGenerator(nn.Module):
    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 16, depth: int = 3,
                 residual: bool = True, max_channels: int = 256):
        super().__init__()
        self.depth = depth
        self.residual = residual and in_channels == out_channels
        widths = [min(base * 2 ** i, max_channels) for i in range(depth + 1)]
        self.inc = _Block(in_channels, widths[0])
        self.downs = nn.ModuleList()
        for i in range(depth):
            self.downs.append(nn.Sequential(
                nn.Conv3d(widths[i], widths[i + 1], 4, 2, 1, bias=False), _norm3d(widths[i + 1]),
                nn.LeakyReLU(0.2, inplace=True), _Block(widths[i + 1], widths[i + 1])))
        self.ups = nn.ModuleList()
        for i in range(depth, 0, -1):
            self.ups.append(nn.ModuleDict({
                "reduce": nn.Conv3d(widths[i], widths[i - 1], 1, bias=False),
                "block": _Block(2 * widths[i - 1], widths[i - 1]),
            }))
        self.head = nn.Conv3d(widths[0], out_channels, 1)
        if self.residual:  # start at the identity
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.multiple = 2 ** depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % self.multiple for s in x.shape[-3:]):
            raise ValueError(f"block size must be a multiple of {self.multiple}, got {tuple(x.shape[-3:])}")
        h = self.inc(x)
        skips = [h]
        for down in self.downs:
            h = down(h)
            skips.append(h)
        skips.pop()
        for up in self.ups:
            h = F.interpolate(h, scale_factor=2, mode="trilinear", align_corners=False)
            h = up["reduce"](h)
            h = up["block"](torch.cat([h, skips.pop()], dim=1))
        y = torch.tanh(self.head(h))
        if self.residual:
            y = x + y
        return y


class PatchCritic3D(nn.Module):
    """``forward(condition, image) -> (B, 1, d, h, w)`` patch scores (no sigmoid: WGAN or hinge/LSGAN use)."""

    def __init__(self, cond_channels: int = 1, image_channels: int = 1, base: int = 16, n_layers: int = 3,
                 max_channels: int = 256):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(cond_channels + image_channels, base, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = base
        for i in range(1, n_layers):
            nxt = min(base * 2 ** i, max_channels)
            # no batch norm: a WGAN-GP critic must not mix samples in a batch
            layers += [nn.Conv3d(ch, nxt, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            ch = nxt
        layers += [nn.Conv3d(ch, ch, 3, 1, 1), nn.LeakyReLU(0.2, True), nn.Conv3d(ch, 1, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, image], dim=1))
