"""GGCL / StarGAN networks for CT reconstruction-kernel conversion (Choi et al., MICCAI 2023).

* :class:`StarGenerator` -- a StarGAN-style multi-domain generator: a 7x7 stem, two stride-2
  downsamplings, residual blocks, upsampling by 3x3 conv + PixelShuffle (no transposed convs) and a
  tanh output. The target domain is a one-hot vector tiled over the image and concatenated to the input.
  It also returns a decoder feature map (the first upsampling's output, average-pooled to 1/4 size) that
  GGCL uses as the keys of its PatchNCE term.
* :class:`UNetDiscriminator` -- a U-Net discriminator with spectral norm and LeakyReLU: the encoder
  bottom gives a real/fake patch map and domain logits, the decoder (skip connections, PixelShuffle
  upsampling) gives a feature map at 1/4 size (the PatchNCE queries).

The layout follows the GGCL paper's description; the code is written from it, not copied.
torch only; no training logic here (see :mod:`ctstudio.translation.ggcl`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm


def _inorm(ch: int) -> nn.Module:
    # affine instance norm without running statistics: the same behaviour in train and eval,
    # so a volume converted slice by slice does not depend on the batch or on the mode.
    return nn.InstanceNorm2d(ch, affine=True, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1, bias=False), _inorm(ch), nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, 1, 1, bias=False), _inorm(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), _inorm(cout), nn.ReLU(inplace=True))


def _up(cin: int, cout: int) -> nn.Sequential:
    # 3x3 conv to 4*cout channels, then PixelShuffle(2): no transposed convolution (no checkerboard).
    return nn.Sequential(nn.Conv2d(cin, cout * 4, 3, 1, 1, bias=False), nn.PixelShuffle(2), _inorm(cout),
                         nn.ReLU(inplace=True))


class StarGenerator(nn.Module):
    """``forward(x, c) -> (y, feature)``: x (B,1,H,W) in [-1,1], c (B,n_domains) one-hot target domain.

    ``residual=True`` adds the input to the tanh output (``y = x + tanh(.)``) and feeds the stem's
    full-resolution features to the output conv (a long skip): the network then learns the kernel
    *difference*, fine detail included, which trains far faster on a CPU; it starts as the identity.
    ``residual=False`` is the paper's plain tanh output. H and W must be multiples of 4.
    """

    def __init__(self, n_domains: int, conv_dim: int = 64, n_res: int = 6, residual: bool = False):
        super().__init__()
        if n_domains < 1:
            raise ValueError("a generator needs at least one domain")
        self.n_domains = n_domains
        self.residual = residual
        d = conv_dim
        self.stem = nn.Sequential(nn.Conv2d(1 + n_domains, d, 7, 1, 3, bias=False), _inorm(d), nn.ReLU(inplace=True))
        self.down1 = _down(d, 2 * d)
        self.down2 = _down(2 * d, 4 * d)
        self.res = nn.Sequential(*[ResidualBlock(4 * d) for _ in range(n_res)])
        self.up1 = _up(4 * d, 2 * d)
        self.up2 = _up(2 * d, d)
        # residual mode also gives the head a long skip from the full-resolution stem, so that the
        # fine-detail part of the kernel difference (sharpening, noise texture) need not squeeze
        # through the 1/4-size bottleneck
        self.head = nn.Conv2d(2 * d if residual else d, 1, 7, 1, 3, bias=False)
        if residual:  # start at the identity: the kernel difference begins at zero
            nn.init.zeros_(self.head.weight)
        self.pool = nn.AvgPool2d(2)
        self.feature_channels = 2 * d

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"image size must be a multiple of 4, got {tuple(x.shape[-2:])}")
        cmap = c.to(x.dtype).view(c.shape[0], c.shape[1], 1, 1).expand(-1, -1, x.shape[2], x.shape[3])
        s = self.stem(torch.cat([x, cmap], dim=1))
        h = self.res(self.down2(self.down1(s)))
        u1 = self.up1(h)
        u2 = self.up2(u1)
        if self.residual:
            y = x + torch.tanh(self.head(torch.cat([u2, s], dim=1)))
        else:
            y = torch.tanh(self.head(u2))
        return y, self.pool(u1)


def _sn_conv(cin, cout, k, s, p, bias=True) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, s, p, bias=bias))


class UNetDiscriminator(nn.Module):
    """``forward(x) -> (src (B,1,h,w), cls (B,n_domains), feature (B,feature_channels,H/4,W/4))``.

    ``n_levels`` stride-2 encoder levels (7 at 512², fewer at smaller crops; the bottom must be >= 2 px)
    and ``n_levels - 1`` decoder levels with skip connections back to 1/2 size, then average-pooled to
    1/4 size to line up with the generator's feature map. ``feature_channels`` should equal the
    generator's (``2 * g_conv_dim``); a 1x1 spectral-norm projection sets it. Channel widths are capped
    at ``max_dim`` so deep discriminators stay small.
    """

    def __init__(self, image_size: int, n_domains: int, conv_dim: int = 32, n_levels: int = 7,
                 feature_channels: int = 128, max_dim: int = 2048):
        super().__init__()
        if image_size % (2 ** n_levels) or image_size // (2 ** n_levels) < 2:
            raise ValueError(f"image_size {image_size} does not allow {n_levels} stride-2 levels "
                             f"(needs a multiple of {2 ** n_levels} and >= 2 px at the bottom)")
        self.image_size = image_size
        self.n_levels = n_levels
        widths = [min(conv_dim * 2 ** i, max_dim) for i in range(n_levels)]
        self.enc = nn.ModuleList()
        cin = 1
        for w in widths:
            self.enc.append(nn.Sequential(_sn_conv(cin, w, 4, 2, 1), nn.LeakyReLU(0.01)))
            cin = w
        # decoder: from the bottom (level n-1) up to level 0 (1/2 size), concatenating encoder skips
        self.dec = nn.ModuleList()
        ch = widths[-1]
        for lvl in range(n_levels - 2, -1, -1):
            out = widths[lvl]
            self.dec.append(nn.Sequential(_sn_conv(ch, out * 4, 1, 1, 0, bias=False), nn.PixelShuffle(2),
                                          nn.LeakyReLU(0.01)))
            ch = out + widths[lvl]  # after concatenation with the skip
        self.dec_out = _sn_conv(ch, feature_channels, 1, 1, 0, bias=False)
        self.pool = nn.AvgPool2d(2)
        bottom = image_size // 2 ** n_levels
        self.src = nn.Conv2d(widths[-1], 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(widths[-1], n_domains, bottom, bias=False)
        self.feature_channels = feature_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(f"the discriminator was built for {self.image_size}² crops, got {tuple(x.shape[-2:])}")
        skips = []
        h = x
        for layer in self.enc:
            h = layer(h)
            skips.append(h)
        bottom = h
        for i, layer in enumerate(self.dec):
            h = layer(h)
            h = torch.cat([h, skips[self.n_levels - 2 - i]], dim=1)
        feat = self.pool(self.dec_out(h))
        return self.src(bottom), self.cls(bottom).flatten(1), feat
