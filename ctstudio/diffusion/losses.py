"""Denoising score matching for the VE-SDE, continuous t, lambda(t) = sigma(t)^2.

``loss = E_t E_z || sigma s(x + sigma z, sigma) + z ||^2`` with ``t ~ U(eps, 1)``; the score
``s = (D - x_noisy) / sigma^2`` comes from the preconditioned denoiser D, so the term inside the norm is
``(D(x + sigma z, sigma) - x) / sigma``.
"""

from __future__ import annotations

import torch

from ctstudio.diffusion.sde import VESDE


def dsm_loss(model, x: torch.Tensor, sde: VESDE, eps: float = 1e-5, generator: torch.Generator | None = None,
             reduce: bool = True) -> torch.Tensor:
    b = x.shape[0]
    t = torch.rand(b, generator=generator, device=x.device) * (1.0 - eps) + eps
    sigma = sde.sigma(t)
    z = torch.randn(x.shape, generator=generator, device=x.device)
    s = sigma[:, None, None, None]
    denoised = model(x + s * z, sigma)
    per = ((denoised - x) / s).pow(2).flatten(1).mean(1)  # = |sigma * score + z|^2 per pixel
    return per.mean() if reduce else per
