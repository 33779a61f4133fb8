"""The variance-exploding SDE (Song et al. 2021): ``dx = sqrt(d sigma^2 / dt) dw``, t in [0, 1].

``sigma(t) = sigma_min (sigma_max / sigma_min)^t``. The ASCII paper uses sigma_min 0.001,
sigma_max 1348 on the whole 12-bit range [-1024, 3071] HU mapped to [-1, 1], and sigma_min 0.01 on its
windowed [-10, 70] HU experiment. sigma_max should be about the largest distance between two training
examples (Song & Ermon 2020, technique 1), so a 64x64x2 demo needs a much smaller one than 512^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VESDE:
    sigma_min: float = 0.001
    sigma_max: float = 1348.0

    @classmethod
    def paper(cls) -> "VESDE":
        return cls(0.001, 1348.0)

    @classmethod
    def paper_windowed(cls) -> "VESDE":
        return cls(0.01, 1348.0)

    def sigma(self, t):
        """sigma(t) for t in [0, 1] (float or tensor)."""
        ratio = self.sigma_max / self.sigma_min
        if isinstance(t, torch.Tensor):
            return self.sigma_min * torch.pow(torch.as_tensor(ratio, dtype=t.dtype, device=t.device), t)
        return self.sigma_min * ratio ** t

    def t_of_sigma(self, sigma):
        lr = math.log(self.sigma_max / self.sigma_min)
        if isinstance(sigma, torch.Tensor):
            return torch.log(sigma / self.sigma_min) / lr
        return math.log(sigma / self.sigma_min) / lr

    def marginal_std(self, t):
        """Std of x(t) | x(0): sqrt(sigma(t)^2 - sigma(0)^2) ~ sigma(t)."""
        return self.sigma(t)

    def prior_sample(self, shape, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=device) * self.sigma_max

    # -- discretisations (descending, with a final 0) --------------------------------------
    def geometric_sigmas(self, n: int, device="cpu") -> torch.Tensor:
        """The PC sampler's grid: sigma(t) at n points t = 1 ... 0 (geometric), then 0."""
        if n < 1:
            raise ValueError("need at least one step")
        t = torch.linspace(1.0, 0.0, n, dtype=torch.float64)
        s = self.sigma(t)
        return torch.cat([s, s.new_zeros(1)]).to(torch.float32).to(device)

    def karras_sigmas(self, n: int, rho: float = 7.0, device="cpu") -> torch.Tensor:
        """Karras et al. 2022 eq. 5: n levels from sigma_max to sigma_min, spaced in sigma^(1/rho), then 0."""
        if n < 1:
            raise ValueError("need at least one step")
        ramp = torch.linspace(0, 1, n, dtype=torch.float64)
        lo, hi = self.sigma_min ** (1 / rho), self.sigma_max ** (1 / rho)
        s = (hi + ramp * (lo - hi)) ** rho
        return torch.cat([s, s.new_zeros(1)]).to(torch.float32).to(device)

    def to_dict(self) -> dict:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}
